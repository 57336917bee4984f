package bytesize

import (
	"flag"
	"fmt"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"1MiB", 1 << 20, true},
		{"1M", 1 << 20, true},
		{"1mb", 1 << 20, true},
		{"512k", 512 << 10, true},
		{"4KB", 4 << 10, true},
		{"32MiB", 32 << 20, true},
		{"256MiB", 256 << 20, true},
		{"2GiB", 2 << 30, true},
		{"1T", 1 << 40, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5M", 0, false},
		{"MiB", 0, false},
		{"1X", 0, false},
		{"12x", 0, false},
		{"99999999999T", 0, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 64 << 20: "64.0 MiB", 3 << 40: "3.0 TiB", 5000 << 40: "5000.0 TiB"} {
		if got := Format(in); got != want {
			t.Errorf("Format(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestValue(t *testing.T) {
	for in, want := range map[string]string{"1048576": "1MiB", "3K": "3KiB", "1000": "1000", "0": "0", "2t": "2TiB"} {
		var v Value
		if err := v.Set(in); err != nil || v.String() != want {
			t.Errorf("Set(%q): String() = %q, %v; want %q", in, v.String(), err, want)
		}
	}
	var v Value
	if err := v.Set("1.5M"); err == nil {
		t.Error("Set(1.5M) succeeded")
	}
}

func ExampleValue() {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	size := Value(64 << 20)
	fs.Var(&size, "size", "object `size`")
	if err := fs.Parse([]string{"-size", "512KiB"}); err != nil {
		panic(err)
	}
	fmt.Println(int64(size), size.String(), Format(int64(size)))
	// Output: 524288 512KiB 512.0 KiB
}
