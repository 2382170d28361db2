package upstream

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"
)

// File writes every copy as an .eml file into a folder, so that a new user
// sees exactly what would have been sent. A copy is accepted only once its
// file is on disk under its final name: written to a hidden temporary
// file, synced, renamed, and the rename synced. A crash leaves either the
// whole file or a hidden temporary one, never half a message under .eml.
//
// Syncing is shared: the copies written while one sync runs are made
// durable together by the next (syncfs), instead of an fsync each, which
// under concurrent sessions was most of the proxy's time.
type File struct {
	dir  string
	dirf *os.File

	syncs chan chan error
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// NewFile creates dir when missing and starts its syncer; Close stops it.
func NewFile(dir string) (*File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("upstream: create %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	f := &File{dir: dir, dirf: d, syncs: make(chan chan error, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go f.syncer()
	return f, nil
}

// Dir is the folder the files go to.
func (f *File) Dir() string { return f.dir }

var fileBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}

// Send writes one file with the envelope in X-Optinproxy-Envelope-* lines
// above the message.
func (f *File) Send(ctx context.Context, from string, to []string, msg io.WriterTo, _ *smtp.MailOptions) ([]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	name := strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + hex.EncodeToString(rnd[:]) + ".eml"
	tmp, err := os.CreateTemp(f.dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	w := fileBufs.Get().(*bufio.Writer)
	w.Reset(tmp)
	fmt.Fprintf(w, "X-Optinproxy-Envelope-From: <%s>\r\n", from)
	for _, rcpt := range to {
		fmt.Fprintf(w, "X-Optinproxy-Envelope-To: <%s>\r\n", rcpt)
	}
	lw := newLineWriter(w)
	_, err = msg.WriteTo(lw)
	if err == nil {
		err = lw.Finish()
	}
	if err == nil {
		err = w.Flush()
	}
	w.Reset(nil)
	fileBufs.Put(w)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.sync(ctx) // the content, before the name points at it
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(f.dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("upstream: write %s: %w", name, err)
	}
	if err := f.sync(ctx); err != nil { // the name
		return nil, fmt.Errorf("upstream: write %s: %w", name, err)
	}
	return nil, nil
}

var errFileClosed = errors.New("upstream: file upstream closed")

// sync waits until everything written before the call is on disk.
func (f *File) sync(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case f.syncs <- done:
	case <-f.stop:
		return errFileClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-f.done: // closed with the request still queued
		return errFileClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncer serves sync requests: it takes every request waiting, syncs the
// folder's file system once, and answers them all.
func (f *File) syncer() {
	defer close(f.done)
	for {
		var batch []chan error
		select {
		case req := <-f.syncs:
			batch = append(batch, req)
		case <-f.stop:
			return
		}
	more:
		for {
			select {
			case req := <-f.syncs:
				batch = append(batch, req)
			default:
				break more
			}
		}
		err := unix.Syncfs(int(f.dirf.Fd()))
		for _, req := range batch {
			req <- err
		}
	}
}

// Ping checks that the folder is still writable.
func (f *File) Ping(context.Context) error {
	tmp, err := os.CreateTemp(f.dir, ".ping-*")
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// Close stops the syncer; sends after Close fail.
func (f *File) Close() error {
	f.once.Do(func() {
		close(f.stop)
		<-f.done
		f.dirf.Close()
	})
	return nil
}
