package redisstore

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// replyProxy forwards TCP connections from a loopback port to a Redis
// server and can lose the reply of a script: the script reaches Redis
// and runs, but its answer, and everything after it on that connection,
// never reaches the client, which times out as it would on an
// overloaded machine. Commands are seen only by their names in the
// client's bytes, which is enough for go-redis's requests.
type replyProxy struct {
	Addr string

	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu   sync.Mutex
	drop int // scripts whose replies are still to be lost
	lost int // scripts whose replies were lost
	// hush makes the next script silence the proxy: from it on, no reply
	// on any connection reaches its client until speak.
	hush, silent bool
	conns        []net.Conn
}

// scriptNames are the commands whose replies the proxy loses: go-redis
// sends them in lower case, as RESP bulk strings.
var scriptNames = [][]byte{[]byte("$7\r\nevalsha\r\n"), []byte("$4\r\neval\r\n")}

func startReplyProxy(t *testing.T, target string) *replyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyProxy{Addr: ln.Addr().String(), ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

// loseNext makes the proxy lose the replies of the next n scripts.
func (p *replyProxy) loseNext(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = n
}

// silenceAfterNext makes the next script's reply, and every reply after
// it on any connection, be lost until speak: Redis ran the script and
// then seems to hang.
func (p *replyProxy) silenceAfterNext() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hush = true
}

// speak ends the silence: replies flow again (on connections opened from
// now on; the muted ones stay muted).
func (p *replyProxy) speak() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hush, p.silent, p.drop = false, false, 0
}

// lostReplies is how many replies the proxy lost so far.
func (p *replyProxy) lostReplies() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

func (p *replyProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		var muted sync.Mutex
		mute := false
		p.wg.Go(func() {
			defer up.Close()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					// Decided before the bytes go on, so that the reply
					// cannot come back first.
					if p.takeDrop(buf[:n]) {
						muted.Lock()
						mute = true
						muted.Unlock()
					}
					if _, werr := up.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
		p.wg.Go(func() {
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := up.Read(buf)
				muted.Lock()
				m := mute
				muted.Unlock()
				p.mu.Lock()
				m = m || p.silent
				p.mu.Unlock()
				if n > 0 && !m {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

// takeDrop reports whether the client's bytes b send a script whose
// reply is to be lost, and counts it.
func (p *replyProxy) takeDrop(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drop == 0 && !p.hush {
		return false
	}
	low := bytes.ToLower(b)
	for _, name := range scriptNames {
		if bytes.Contains(low, name) {
			if p.hush {
				p.hush, p.silent = false, true
			} else {
				p.drop--
			}
			p.lost++
			return true
		}
	}
	return false
}

func (p *replyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
