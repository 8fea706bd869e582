//go:build !linux

package bus

import (
	"errors"
	"os"
)

// Without syncfs(2) the embedded server syncs each message itself
// (nats-server's SyncAlways).
const syncfsSupported = false

func syncfs(*os.File) error { return errors.New("syncfs is not supported on this system") }
