package bus

import (
	"os"

	"golang.org/x/sys/unix"
)

const syncfsSupported = true

// syncfs writes every dirty page and metadata of the filesystem holding f to
// disk (syncfs(2)).
func syncfs(f *os.File) error { return unix.Syncfs(int(f.Fd())) }
