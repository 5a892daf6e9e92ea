package blendfile

import (
	"archive/zip"
	"compress/flate"
	"errors"
	"fmt"
	"io"
)

// ReadZipHeader checks the project zip at zipPath as CheckZip does, then
// reads the header of its .blend from inside the zip, extracting nothing:
// a project whose .blend is not one, or was saved by a Blender the farm
// does not run, is known before gigabytes of textures are unpacked. As
// ReadHeader does for a file, it reads at most about a mebibyte of the
// entry's compressed bytes, whatever the entry holds.
//
// A problem with the zip or its .blend is an *Error: the .blend's own
// codes (CodeNotABlendFile, …) with a message naming the entry, or
// CodeCorruptZip for an entry that cannot be decompressed. Any other error
// is the farm's own failure.
func ReadZipHeader(zipPath string, lim ZipLimits) (Project, Header, error) {
	lim = lim.orDefaults()
	z, err := openZip(zipPath, lim)
	if err != nil {
		return Project{}, Header{}, err
	}
	defer z.close()
	p, entries, err := checkEntries(z, lim)
	if err != nil {
		return Project{}, Header{}, err
	}
	name := p.BlendPath
	if p.Root != "" {
		name = p.Root + "/" + p.BlendPath
	}
	for _, e := range entries {
		if e.dir || e.name != name {
			continue
		}
		h, err := readEntryHeader(z.src, e)
		return p, h, err
	}
	// checkEntries found the .blend among the entries.
	return Project{}, Header{}, fmt.Errorf("blendfile: the project's .blend %s is not among the zip's entries", name)
}

// readEntryHeader reads the .blend header at the start of entry e. The
// entry is decompressed here, from a bounded part of its raw bytes, as
// ExtractZip decompresses it, so that neither a stored nor a deflated
// entry is read further than the header needs.
func readEntryHeader(src *zipSource, e entry) (Header, error) {
	raw, err := e.f.OpenRaw()
	if err != nil {
		return Header{}, entryError(src, e, err)
	}
	data := io.LimitReader(raw, maxCompressedInput)
	if e.f.Method == zip.Deflate {
		fr := flate.NewReader(data)
		defer fr.Close()
		data = fr
	}
	h, err := ReadHeader(data)
	var be *Error
	switch {
	case errors.As(err, &be):
		return Header{}, newError(be.Code, "the project's .blend %s: %s", quoted(e.name), be.Message)
	case err != nil:
		return Header{}, entryError(src, e, err)
	}
	return h, nil
}

// entryError classifies a failure to read an entry's data: the farm's
// disk, or the zip's content.
func entryError(src *zipSource, e entry, err error) error {
	if src.ioErr != nil {
		return fmt.Errorf("blendfile: reading entry %q: %w", e.name, src.ioErr)
	}
	return newError(CodeCorruptZip,
		"entry %s cannot be unpacked (%v); the zip is damaged or was cut short, zip the project again and upload it", quoted(e.f.Name), err)
}
