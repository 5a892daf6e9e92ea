package blendfile

import "fmt"

// Error codes. They are stable identifiers that the HTTP API passes on to
// clients, so a code is never renamed once released.
const (
	// CodeNotABlendFile: the bytes are not a .blend file at all.
	CodeNotABlendFile = "NOT_A_BLEND_FILE"
	// CodeTruncatedBlendFile: the file, or its compressed stream, ends
	// before the header does.
	CodeTruncatedBlendFile = "TRUNCATED_BLEND_FILE"
	// CodeCorruptBlendFile: the file starts like a .blend but its header or
	// compressed stream is damaged.
	CodeCorruptBlendFile = "CORRUPT_BLEND_FILE"

	// CodeZipNoBlend: no .blend at the project root.
	CodeZipNoBlend = "ZIP_NO_BLEND"
	// CodeZipMultipleBlends: more than one .blend at the project root, so
	// the farm cannot tell which to render.
	CodeZipMultipleBlends = "ZIP_MULTIPLE_BLENDS"
	// CodeZipUnsafePath: an entry name that could land outside the
	// extraction directory or cannot be created on disk.
	CodeZipUnsafePath = "ZIP_UNSAFE_PATH"
	// CodeZipLink: a symbolic link or other non-regular entry.
	CodeZipLink = "ZIP_LINK"
	// CodeZipDuplicateEntry: two entries with the same path, or a path used
	// both as a file and as a folder.
	CodeZipDuplicateEntry = "ZIP_DUPLICATE_ENTRY"
	// CodeZipEncrypted: a password-protected entry.
	CodeZipEncrypted = "ZIP_ENCRYPTED"
	// CodeZipUnsupportedMethod: an entry compressed with something other
	// than store or deflate.
	CodeZipUnsupportedMethod = "ZIP_UNSUPPORTED_METHOD"
	// CodeZipTooManyEntries: more entries than ZipLimits.MaxEntries.
	CodeZipTooManyEntries = "ZIP_TOO_MANY_ENTRIES"
	// CodeZipTooLarge: more uncompressed bytes than ZipLimits.MaxTotalBytes.
	CodeZipTooLarge = "ZIP_TOO_LARGE"
	// CodeZipBomb: an entry that expands far more than real data does, or
	// more than its header admits.
	CodeZipBomb = "ZIP_BOMB"
	// CodeCorruptZip: not a zip, a truncated zip, or damaged entry data.
	CodeCorruptZip = "CORRUPT_ZIP"
)

// Error is a problem with the uploaded file itself, as opposed to an I/O
// failure on the farm's side. Callers report Code and Message to the
// uploader unchanged: the message says what was found and what to do about
// it. Any other error returned by this package is the farm's own failure
// and must not be blamed on the upload.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return e.Code + ": " + e.Message
}

func newError(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
