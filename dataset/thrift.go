package dataset

import (
	"errors"
	"fmt"
)

// maxThriftDepth bounds the nesting of a footer's structs and containers.
const maxThriftDepth = 64

// checkThrift walks a Thrift compact-protocol struct without building it
// and fails unless it is well formed with every length and element count
// covered by the bytes that remain. The thrift decoder that parses the
// footer afterwards allocates containers of the counts it reads (up to 100
// MB of elements by default) before looking at the bytes, so an 80-byte
// footer could claim a billion row groups; after this walk every
// allocation it makes is bounded by the footer's own size.
func checkThrift(b []byte) error {
	w := thriftWalk{b: b}
	return w.value(12, 0) // a struct
}

type thriftWalk struct {
	b   []byte
	pos int
}

var errThriftShort = errors.New("thrift: truncated")

func (w *thriftWalk) byte() (byte, error) {
	if w.pos >= len(w.b) {
		return 0, errThriftShort
	}
	w.pos++
	return w.b[w.pos-1], nil
}

func (w *thriftWalk) varint() (uint64, error) {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		c, err := w.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("thrift: varint too long")
}

// skip consumes n bytes if they are there.
func (w *thriftWalk) skip(n uint64) error {
	if n > uint64(len(w.b)-w.pos) {
		return fmt.Errorf("thrift: length %d past the %d bytes left", n, len(w.b)-w.pos)
	}
	w.pos += int(n)
	return nil
}

// value consumes one value of compact type t.
func (w *thriftWalk) value(t byte, depth int) error {
	if depth > maxThriftDepth {
		return errors.New("thrift: nested too deep")
	}
	switch t {
	case 1, 2: // bool in a field header: no payload
		return nil
	case 3: // byte
		return w.skip(1)
	case 4, 5, 6: // i16, i32, i64
		_, err := w.varint()
		return err
	case 7: // double
		return w.skip(8)
	case 8: // binary
		n, err := w.varint()
		if err != nil {
			return err
		}
		return w.skip(n)
	case 9, 10: // list, set
		return w.list(depth)
	case 11: // map
		return w.mapValue(depth)
	case 12: // struct
		return w.structValue(depth)
	}
	return fmt.Errorf("thrift: unknown type %d", t)
}

func (w *thriftWalk) structValue(depth int) error {
	for {
		h, err := w.byte()
		if err != nil {
			return err
		}
		if h == 0 { // stop
			return nil
		}
		if h>>4 == 0 { // long form: the field id follows
			if _, err := w.varint(); err != nil {
				return err
			}
		}
		if err := w.value(h&0x0f, depth+1); err != nil {
			return err
		}
	}
}

func (w *thriftWalk) list(depth int) error {
	h, err := w.byte()
	if err != nil {
		return err
	}
	n := uint64(h >> 4)
	if n == 15 {
		if n, err = w.varint(); err != nil {
			return err
		}
	}
	// Every element takes at least one byte.
	if n > uint64(len(w.b)-w.pos) {
		return fmt.Errorf("thrift: list of %d elements in %d bytes", n, len(w.b)-w.pos)
	}
	et := h & 0x0f
	for range n {
		if et == 1 || et == 2 { // bools in a list take one byte each
			err = w.skip(1)
		} else {
			err = w.value(et, depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *thriftWalk) mapValue(depth int) error {
	n, err := w.varint()
	if err != nil || n == 0 {
		return err
	}
	if n > uint64(len(w.b)-w.pos) {
		return fmt.Errorf("thrift: map of %d entries in %d bytes", n, len(w.b)-w.pos)
	}
	kv, err := w.byte()
	if err != nil {
		return err
	}
	for range n {
		for _, t := range []byte{kv >> 4, kv & 0x0f} {
			if t == 1 || t == 2 {
				err = w.skip(1)
			} else {
				err = w.value(t, depth+1)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
