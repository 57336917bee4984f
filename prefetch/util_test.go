package prefetch

import "runtime"

func runtimeGosched() { runtime.Gosched() }
