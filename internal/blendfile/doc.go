// Package blendfile inspects uploaded .blend files and project zips without
// running Blender.
//
// Uploads are untrusted, and starting Blender costs about a second and runs
// code paths no one wants exposed to hostile bytes. These checks are cheap
// and answer the questions that decide whether a job can go on at all: is
// this really a .blend, which Blender version saved it, and is this zip a
// project the farm can safely unpack. Every read is bounded and no size
// declared inside a file is trusted.
package blendfile
