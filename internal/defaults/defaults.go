// Package defaults holds the two steps every *Options normalize in this
// module takes, so each package states only its own defaults: copy the
// caller's options (nil means all defaults), then give each unset size its
// default.
package defaults

// Of returns a copy of *o, or the zero T when o is nil: the options a
// normalize method fills in without touching the caller's.
func Of[T any](o *T) T {
	if o == nil {
		var zero T
		return zero
	}
	return *o
}

// Positive returns v when it is above zero, else def: the rule for sizes
// and counts, where zero means "default" and a negative value is not a
// size. (Settings where a negative value means "off", such as a stall
// timeout or a retry count, use cmp.Or, which keeps negatives.)
func Positive[T ~int | ~int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
