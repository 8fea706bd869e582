package bus

import "errors"

var (
	// ErrExists is returned by Append when the subject already holds an entry:
	// journal entries are write-once.
	ErrExists = errors.New("bus: journal entry already written")
	// ErrConflict is returned by KV.Update when the key changed since the
	// revision the caller read.
	ErrConflict = errors.New("bus: key changed since it was read")
	// ErrNotFound is returned when a key or journal entry does not exist.
	ErrNotFound = errors.New("bus: not found")
	// ErrDataDirInUse is returned by Open when another process holds the data dir.
	ErrDataDirInUse = errors.New("bus: data dir in use")
	// ErrClosed is returned by operations on a closed Bus.
	ErrClosed = errors.New("bus: closed")
)
