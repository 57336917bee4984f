package prefetch

// This file is how an engine lets go of prefetched ranges: one dropped
// (a seek past it, a failed part), all of them (DropPrefetched), or all
// for good (Close).

// dropLocked removes a chunk: its fetches are cancelled and its buffer goes
// back to the pool once nobody uses it.
func (e *Engine) dropLocked(c *chunk) {
	c.cancel()
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		c.users.Wait()
		if w := int64(c.buf.Len()) - c.served.Load(); w > 0 {
			e.wasted.Add(w)
		}
		c.buf.Release()
	}()
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// forget drops a chunk if it is still listed.
func (e *Engine) forget(c *chunk) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, x := range e.chunks {
		if x == c {
			e.chunks = append(e.chunks[:i], e.chunks[i+1:]...)
			e.dropLocked(c)
			return
		}
	}
}

// DropPrefetched lets go of every prefetched range: their fetches are
// cancelled and their buffers go back to the pool once no read copies out
// of them (a read waiting on a dropped range fetches its bytes itself).
// Reads go on; a sequential run starts new windows as it needs them. It
// is for a caller that needs the pool's budget back from ranges that may
// never be read: it does no I/O and waits for nothing.
func (e *Engine) DropPrefetched() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropAllLocked()
}

// dropAllLocked drops every listed chunk (see dropLocked).
func (e *Engine) dropAllLocked() {
	for _, c := range e.chunks {
		e.dropLocked(c)
	}
	e.chunks = nil
}

// Close cancels every fetch in flight, waits for them to end and returns
// their buffers to the pool. Reads after Close fail with an error wrapping
// fs.ErrClosed. Close is idempotent and always returns nil.
func (e *Engine) Close() error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		e.dropAllLocked()
	}
	e.mu.Unlock()
	e.cancel()
	e.bg.Wait()
	return nil
}
