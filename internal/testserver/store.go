package testserver

import (
	"errors"
	"time"
)

// errObjectNotFound is returned by an objectStore for a missing object or
// generation.
var errObjectNotFound = errors.New("testserver: object not found")

// storedObject is one generation of an object, as both fakes serve it.
type storedObject struct {
	Bucket, Name   string
	Generation     int64
	Metageneration int64
	ContentType    string
	Updated        time.Time
	Data           []byte
}

// objectStore is what the gRPC fake reads objects from. The Server
// implements it over fake-gcs-server's backend so both protocols see the
// same objects and generations.
type objectStore interface {
	// object returns the given generation of bucket/name, or the live one
	// when generation is 0; errObjectNotFound when there is none.
	object(bucket, name string, generation int64) (storedObject, error)
}
