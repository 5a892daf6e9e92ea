// Package farm is the render farm's domain: a job and the eleven statuses
// it moves through (and which moves are allowed), a frame and its
// statuses, the render request and how it is resolved against what
// validation found in the file (the inspection and its analysis), frame
// ranges and chunking, where a job's files live in the object store, and
// the errors a client is told about, each with a code.
//
// It imports no other package of this module: the database (store), the
// object store, Blender and the HTTP API all speak in its types, and none
// of them can change what they mean.
package farm
