package journal

import (
	"fmt"

	"optinproxy/optin"
)

// commit is one Apply's frame waiting to be written.
type commit struct {
	frame []byte
	count int
	err   error
	done  chan struct{}
}

// append writes changes to the journal as one frame, after every frame
// appended before, and returns once it is synced. Concurrent appends
// share a write and an fsync (group commit): while one write runs, the
// frames that arrive gather for the next.
func (j *Journal) append(changes []optin.Change) error {
	frame, err := sealFrame(j.aead, changes)
	if err != nil {
		return err
	}
	c := &commit{frame: frame, count: len(changes), done: make(chan struct{})}
	j.mu.Lock()
	switch {
	case j.closed.Load():
		j.mu.Unlock()
		return ErrClosed
	case j.broken != nil:
		err := j.broken
		j.mu.Unlock()
		return fmt.Errorf("%w: it failed before: %w", ErrWrite, err)
	}
	j.pending = append(j.pending, c)
	j.depth.Add(int64(c.count))
	if !j.flushing {
		j.flushing = true
		j.wg.Add(1)
		go j.flush()
	}
	j.mu.Unlock()
	<-c.done
	return c.err
}

// flush writes pending frames until none is left.
func (j *Journal) flush() {
	defer j.wg.Done()
	for {
		j.mu.Lock()
		batch := j.pending
		j.pending = nil
		if len(batch) == 0 {
			j.flushing = false
			j.mu.Unlock()
			return
		}
		err := j.broken
		j.mu.Unlock()

		n := 0
		for _, c := range batch {
			n += c.count
		}
		if err == nil {
			err = j.write(batch)
			if err != nil {
				j.fail(err)
			}
		}
		if err != nil {
			j.depth.Add(-int64(n))
			err = fmt.Errorf("%w: %w", ErrWrite, err)
		} else {
			j.journaled.Add(int64(n))
		}
		for _, c := range batch {
			c.err = err
			close(c.done)
		}
	}
}

// write appends the frames of batch at the end of the file and syncs it.
func (j *Journal) write(batch []*commit) error {
	buf := batch[0].frame
	if len(batch) > 1 {
		size := 0
		for _, c := range batch {
			size += len(c.frame)
		}
		buf = make([]byte, 0, size)
		for _, c := range batch {
			buf = append(buf, c.frame...)
		}
	}
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	end := j.size.Load()
	if _, err := j.f.WriteAt(buf, end); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	j.syncs.Add(1)
	j.size.Store(end + int64(len(buf)))
	return nil
}

// fail marks the journal broken after a failed write, sync or
// truncation: after a failed fsync, what the file holds is not known
// (the kernel may have dropped the pages), so it takes no more frames
// until it is opened again and read back. What was acknowledged before
// is still drained.
func (j *Journal) fail(err error) {
	j.mu.Lock()
	first := j.broken == nil
	if first {
		j.broken = err
	}
	j.mu.Unlock()
	if first {
		j.log.Error("journal write failed; it takes no more changes until restarted", "err", err)
	}
}
