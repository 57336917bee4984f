package gcsfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"cloud.google.com/go/storage"

	"github.com/zonalread/zonalread/mrdpool"
)

// Version is one version of an object as a listing, a stat or an open
// saw it: what OpenVersion pins.
type Version struct {
	Size       int64
	Generation int64     // GCS generation; 0 when unknown or not GCS
	ModTime    time.Time // zero when unknown
}

// VersionOf returns the Version an fs.FileInfo of this package describes:
// from Stat, ReadDir's entries (their Info costs no request) or a File's
// Stat. ok is false for a directory or a FileInfo from another FS.
func VersionOf(fi fs.FileInfo) (v Version, ok bool) {
	i, ok := fi.(fileInfo)
	if !ok || i.dir {
		return Version{}, false
	}
	return Version{Size: i.size, Generation: i.gen, ModTime: i.mod}, true
}

// OpenVersion opens name pinned to v, a version of it seen earlier: an
// entry of a listing (VersionOf), a File's Stat, a saved plan. ctx bounds
// the open only. Errors are those of OpenContext, and an error wrapping
// ErrObjectChanged when the object is not v.
//
// On GCS, zonal or not, a v with a generation opens without a request:
// the first read is the first round trip (on a zonal bucket, its
// multi-range downloader opens at that generation as a File's opens
// always do, and the pool opens streams as reads need them, never ahead),
// and every read is of generation v.Generation or fails with an error
// wrapping ErrObjectChanged (the object was overwritten or deleted and
// that generation is gone; the error comes at that read, not at the
// open). Elsewhere (a bucket without generations, a v without one) the
// open stats the object as OpenContext does and fails unless it is v (an
// object that no longer exists fails with an error wrapping both
// fs.ErrNotExist and ErrObjectChanged): the same size, and the same
// generation where both sides know one, else the same modification time
// where both know it. A v with a negative size fails with an error
// wrapping fs.ErrInvalid.
func (f *FS) OpenVersion(ctx context.Context, name string, v Version) (*File, error) {
	if v.Size < 0 {
		return nil, pathErr("open", name, fmt.Errorf("version of %d bytes: %w", v.Size, fs.ErrInvalid))
	}
	var gcs *storage.Client
	if v.Generation == 0 || !(f.zonal || f.bucket.As(&gcs)) {
		return f.openStatVersion(ctx, name, v)
	}
	if err := f.mayOpen(ctx, name); err != nil {
		return nil, err
	}
	info := mrdpool.ObjectInfo{Size: v.Size, Generation: v.Generation, ModTime: v.ModTime}
	return f.newFile(name, info, f.pinnedPool(name, info, f.poolOptions(name)))
}

// openStatVersion is OpenVersion where the version cannot be pinned
// without a stat: it opens name and checks it is v.
func (f *FS) openStatVersion(ctx context.Context, name string, v Version) (*File, error) {
	file, err := f.openFile(ctx, name, false)
	var pe *fs.PathError
	if errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe) {
		return nil, pathErr("open", name, fmt.Errorf("%w: it no longer exists: %w", ErrObjectChanged, pe.Err))
	}
	if err != nil {
		return nil, err
	}
	if !v.matches(file.info) {
		file.Close()
		return nil, pathErr("open", name, fmt.Errorf("%w: it is generation %d of %d bytes modified %v, not generation %d of %d bytes modified %v",
			ErrObjectChanged, file.info.Generation, file.info.Size, file.info.ModTime, v.Generation, v.Size, v.ModTime))
	}
	return file, nil
}

// matches reports whether the opened object info is version v.
func (v Version) matches(info mrdpool.ObjectInfo) bool {
	if v.Size != info.Size {
		return false
	}
	if v.Generation != 0 && info.Generation != 0 {
		// The generation names the data; a metadata update moves the
		// modification time without making a new generation.
		return v.Generation == info.Generation
	}
	return v.ModTime.IsZero() || info.ModTime.IsZero() || v.ModTime.Equal(info.ModTime)
}
