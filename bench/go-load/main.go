// go-load: a closed-loop etcd v3 load generator on the official Go client (clientv3), in the
// manner of etcd's own benchmark tool, so that the client spends little CPU and the same tool
// measures etcd and MetaStore. Built from Debian's Go sources (GOPATH mode, no network).
//
//	go-load -endpoint 127.0.0.1:2379 -op put|txn-put|range|list -clients 100 -conns 10 -total 50000
//
// put writes keys[i % key-space]; txn-put writes it in a Txn with no compares and that one put
// (as etcd's `benchmark txn-put` with its default --txn-ops 1); range reads one key (key 42), or keys[i % key-space] with
// -spread; list pages through every key at the revision of its first page, -page keys per page
// (as Kubernetes lists), each client listing in turn: -total counts pages, not lists.
// Prints one JSON line: {"op","ops","errors","seconds","opsPerSecond","p50Ms","p90Ms","p99Ms","maxMs",
// "cpuUserUs","cpuSystemUs"} (the tool's own CPU over the timed calls, from getrusage), and with
// -frames also "frames": the HTTP/2 frames by type each way and the socket reads and writes over
// the timed calls, counted on every connection by a wrapper around the dialed net.Conn (clientv3
// takes a later grpc.WithContextDialer over its own; the wrapper parses only the 9-byte frame
// headers, so it costs little, but it is off by default so CPU runs measure the bare client).
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoints, comma-separated")
	linearizable := flag.Bool("linearizable", false, "linearizable ranges (default serializable)")
	op := flag.String("op", "put", "put, txn-put, range or list")
	clients := flag.Int("clients", 100, "concurrent callers")
	conns := flag.Int("conns", 10, "connections")
	total := flag.Int("total", 50000, "requests in all")
	keySpace := flag.Int("key-space", 100000, "distinct keys")
	valueSize := flag.Int("value-size", 256, "value bytes")
	spread := flag.Bool("spread", false, "range: read keys[i % key-space] instead of one key")
	page := flag.Int64("page", 500, "list: keys per page")
	frames := flag.Bool("frames", false, "count HTTP/2 frames and socket reads/writes each way")
	flag.Parse()

	countFrames = *frames
	dialOptions := []grpc.DialOption{grpc.WithContextDialer(recordingDialer)}

	cls := make([]*clientv3.Client, *conns)
	for i := range cls {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoint, ","), DialTimeout: 5 * time.Second, MaxCallRecvMsgSize: 64 << 20, DialOptions: dialOptions})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cls[i] = c
	}
	value := string(make([]byte, *valueSize))
	keys := make([]string, *keySpace)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08d", (i*7919)%*keySpace)
	}
	if *op == "range" && !*spread {
		if _, err := cls[0].Put(context.Background(), keys[42], value); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	var opts []clientv3.OpOption
	if !*linearizable {
		opts = append(opts, clientv3.WithSerializable())
	}

	var call func(cli *clientv3.Client, i int) error
	switch *op {
	case "put":
		call = func(cli *clientv3.Client, i int) error {
			_, err := cli.Put(context.Background(), keys[i%*keySpace], value)
			return err
		}
	case "txn-put":
		call = func(cli *clientv3.Client, i int) error {
			_, err := cli.Txn(context.Background()).Then(clientv3.OpPut(keys[i%*keySpace], value)).Commit()
			return err
		}
	case "range":
		call = func(cli *clientv3.Client, i int) error {
			key := keys[42]
			if *spread {
				key = keys[i%*keySpace]
			}
			_, err := cli.Get(context.Background(), key, opts...)
			return err
		}
	case "list":
		lists := &lister{opts: opts, page: *page}
		call = lists.next
	default:
		fmt.Fprintln(os.Stderr, "unknown -op", *op)
		os.Exit(2)
	}

	latencies := make([]float64, *total)
	var next int64 = -1
	var errors int64
	var wg sync.WaitGroup
	counted0 := counters.snapshot()
	segments0 := tcpSegments()
	var usage0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage0)
	start := time.Now()
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(cli *clientv3.Client) {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(*total) {
					return
				}
				t := time.Now()
				err := call(cli, int(i))
				latencies[i] = float64(time.Since(t).Microseconds()) / 1000
				if err != nil {
					atomic.AddInt64(&errors, 1)
				}
			}
		}(cls[c%len(cls)])
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	var usage1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage1)
	counted := counters.snapshot().minus(counted0)
	segments := tcpSegments()
	for k, v := range segments0 {
		segments[k] -= v
	}
	sort.Float64s(latencies)
	at := func(q float64) float64 { return latencies[int(q*float64(len(latencies)-1))] }
	result := map[string]interface{}{
		"op": *op, "ops": *total, "errors": errors, "seconds": seconds,
		"opsPerSecond": float64(*total) / seconds,
		"p50Ms":        at(0.5), "p90Ms": at(0.9), "p99Ms": at(0.99), "maxMs": latencies[len(latencies)-1],
		"cpuUserUs":   micros(usage1.Utime) - micros(usage0.Utime),
		"cpuSystemUs": micros(usage1.Stime) - micros(usage0.Stime),
	}
	result["tcp"] = segments
	if *frames {
		result["frames"] = counted.named()
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
	for _, c := range cls {
		c.Close()
	}
}

// lister hands out the pages of consecutive full lists; meant for one client (one list at a
// time), as a Kubernetes reflector lists.
type lister struct {
	mu   sync.Mutex
	opts []clientv3.OpOption
	page int64
	from string
	rev  int64
}

func (l *lister) next(cli *clientv3.Client, _ int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	opts := append([]clientv3.OpOption{clientv3.WithRange("\x00"), clientv3.WithLimit(l.page)}, l.opts...)
	if l.rev > 0 {
		opts = append(opts, clientv3.WithRev(l.rev))
	}
	// The smallest key after the last one seen; "\x00" starts a list (keys are never empty).
	resp, err := cli.Get(context.Background(), l.from+"\x00", opts...)
	if err != nil {
		return err
	}
	if l.rev == 0 {
		l.rev = resp.Header.Revision
	}
	if !resp.More || len(resp.Kvs) == 0 {
		l.from, l.rev = "", 0
		return nil
	}
	l.from = string(resp.Kvs[len(resp.Kvs)-1].Key)
	return nil
}

func micros(t syscall.Timeval) int64 { return t.Sec*1_000_000 + t.Usec }

// frameTypes names HTTP/2 frame types 0-9 (RFC 7540 section 6); anything else counts as "other".
var frameTypes = [...]string{"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION", "other"}

// tally holds one direction's counts: frames by type, then socket calls and bytes.
type tally struct {
	frames [len(frameTypes)]int64
	calls  int64
	bytes  int64
}

type frameCounters struct{ sent, received tally }

// counters sums every counted connection (atomically: each connection's reader and writer run
// on their own goroutines).
var counters frameCounters

func (t *tally) load() tally {
	var out tally
	for i := range t.frames {
		out.frames[i] = atomic.LoadInt64(&t.frames[i])
	}
	out.calls = atomic.LoadInt64(&t.calls)
	out.bytes = atomic.LoadInt64(&t.bytes)
	return out
}

func (c *frameCounters) snapshot() frameCounters {
	return frameCounters{c.sent.load(), c.received.load()}
}

func (c frameCounters) minus(o frameCounters) frameCounters {
	sub := func(a, b tally) tally {
		for i := range a.frames {
			a.frames[i] -= b.frames[i]
		}
		a.calls -= b.calls
		a.bytes -= b.bytes
		return a
	}
	return frameCounters{sub(c.sent, o.sent), sub(c.received, o.received)}
}

func (c frameCounters) named() map[string]map[string]int64 {
	name := func(t tally) map[string]int64 {
		m := map[string]int64{"socketCalls": t.calls, "bytes": t.bytes}
		for i, n := range t.frames {
			if n > 0 {
				m[frameTypes[i]] = n
			}
		}
		return m
	}
	return map[string]map[string]int64{"sent": name(c.sent), "received": name(c.received)}
}

// frameParser follows one direction's byte stream and counts each frame header it completes.
type frameParser struct {
	skip   int // bytes still to pass over: the client preface, then each frame's payload
	header [9]byte
	have   int
	tally  *tally
}

func (p *frameParser) feed(b []byte) {
	atomic.AddInt64(&p.tally.calls, 1)
	atomic.AddInt64(&p.tally.bytes, int64(len(b)))
	for len(b) > 0 {
		if p.skip > 0 {
			n := p.skip
			if n > len(b) {
				n = len(b)
			}
			p.skip -= n
			b = b[n:]
			continue
		}
		n := copy(p.header[p.have:], b)
		p.have += n
		b = b[n:]
		if p.have < 9 {
			return
		}
		p.have = 0
		t := int(p.header[3])
		if t >= len(frameTypes)-1 {
			t = len(frameTypes) - 1
		}
		atomic.AddInt64(&p.tally.frames[t], 1)
		p.skip = int(p.header[0])<<16 | int(p.header[1])<<8 | int(p.header[2])
	}
}

// countingConn counts the frames written and read on one client connection.
type countingConn struct {
	net.Conn
	out, in frameParser
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.feed(b[:n])
	return n, err
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.in.feed(b[:n])
	}
	return n, err
}

var (
	countFrames bool
	dialedMu    sync.Mutex
	dialed      []*net.TCPConn
)

// recordingDialer dials "host:port" as clientv3's own dialer does (the passthrough resolver's
// address, scheme dropped), keeps the connection for tcpSegments, and wraps it in a frame
// counter when -frames is given.
func recordingDialer(ctx context.Context, address string) (net.Conn, error) {
	if i := strings.Index(address, "://"); i >= 0 {
		address = address[i+3:]
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	dialedMu.Lock()
	dialed = append(dialed, conn.(*net.TCPConn))
	dialedMu.Unlock()
	if !countFrames {
		return conn, nil
	}
	// The client opens with the 24-byte connection preface before its first frame.
	return &countingConn{Conn: conn, out: frameParser{skip: 24, tally: &counters.sent}, in: frameParser{tally: &counters.received}}, nil
}

// tcpSegments sums the kernel's per-socket counters (struct tcp_info, Linux >= 4.6) over every
// dialed connection: segments out (client to server, pure ACKs included) and in, and those
// carrying data. Read by offset because the vendored x/sys TCPInfo predates these fields.
func tcpSegments() map[string]int64 {
	out := map[string]int64{"segsOut": 0, "segsIn": 0, "dataSegsOut": 0, "dataSegsIn": 0}
	dialedMu.Lock()
	defer dialedMu.Unlock()
	for _, conn := range dialed {
		raw, err := conn.SyscallConn()
		if err != nil {
			continue
		}
		_ = raw.Control(func(fd uintptr) {
			var info [232]byte
			size := uint32(len(info))
			_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO, uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
			if errno != 0 || size < 160 {
				return
			}
			at := func(offset int) int64 { return int64(binary.LittleEndian.Uint32(info[offset:])) }
			out["segsOut"] += at(136)
			out["segsIn"] += at(140)
			out["dataSegsIn"] += at(152)
			out["dataSegsOut"] += at(156)
		})
	}
	return out
}
