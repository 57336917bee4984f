package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressMin is the smallest read that gets a progress bar.
const progressMin = 8 << 20

// newProgress returns dst wrapped so that writes advance a progress bar on
// stderr, and the function that finishes the bar. The bar is drawn only
// when stderr is a terminal, dst is not (the bar would be drawn over the
// data, as curl's would) and the read is at least progressMin bytes;
// otherwise dst is returned as it is.
func newProgress(dst, stderr io.Writer, total int64, label string) (io.Writer, func()) {
	if total < progressMin || !isTerminal(stderr) || isTerminal(dst) {
		return dst, func() {}
	}
	return progressTo(dst, stderr, total, label)
}

// progressTo always draws the bar on out.
func progressTo(dst, out io.Writer, total int64, label string) (io.Writer, func()) {
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		// Drawn at 0% at once: this starts the clock, and the first
		// window of a parallel read takes a while.
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return io.MultiWriter(dst, bar), func() {
		bar.Finish()
		bar.Exit()
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
