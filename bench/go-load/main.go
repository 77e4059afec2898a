// go-load: a closed-loop etcd v3 load generator on the official Go client (clientv3), in the
// manner of etcd's own benchmark tool, so that the client spends little CPU and the same tool
// measures etcd and MetaStore. Built from Debian's Go sources (GOPATH mode, no network).
//
//	go-load -endpoint 127.0.0.1:2379 -op put|range|list -clients 100 -conns 10 -total 50000
//
// put writes keys[i % key-space]; range reads one key (key 42), or keys[i % key-space] with
// -spread; list pages through every key at the revision of its first page, -page keys per page
// (as Kubernetes lists), each client listing in turn: -total counts pages, not lists.
// Prints one JSON line: {"op","ops","errors","seconds","opsPerSecond","p50Ms","p90Ms","p99Ms","maxMs"}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoints, comma-separated")
	linearizable := flag.Bool("linearizable", false, "linearizable ranges (default serializable)")
	op := flag.String("op", "put", "put, range or list")
	clients := flag.Int("clients", 100, "concurrent callers")
	conns := flag.Int("conns", 10, "connections")
	total := flag.Int("total", 50000, "requests in all")
	keySpace := flag.Int("key-space", 100000, "distinct keys")
	valueSize := flag.Int("value-size", 256, "value bytes")
	spread := flag.Bool("spread", false, "range: read keys[i % key-space] instead of one key")
	page := flag.Int64("page", 500, "list: keys per page")
	flag.Parse()

	cls := make([]*clientv3.Client, *conns)
	for i := range cls {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoint, ","), DialTimeout: 5 * time.Second, MaxCallRecvMsgSize: 64 << 20})
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
	sort.Float64s(latencies)
	at := func(q float64) float64 { return latencies[int(q*float64(len(latencies)-1))] }
	out, _ := json.Marshal(map[string]interface{}{
		"op": *op, "ops": *total, "errors": errors, "seconds": seconds,
		"opsPerSecond": float64(*total) / seconds,
		"p50Ms":        at(0.5), "p90Ms": at(0.9), "p99Ms": at(0.99), "maxMs": latencies[len(latencies)-1],
	})
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
