// go-load: a closed-loop etcd v3 load generator on the official Go client (clientv3), in the
// manner of etcd's own benchmark tool, so that the client spends little CPU and the same tool
// measures etcd and MetaStore. Built from Debian's Go sources (GOPATH mode, no network).
//
//	go-load -endpoint 127.0.0.1:2379 -op put|range -clients 100 -conns 10 -total 50000
//
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
	op := flag.String("op", "put", "put or range")
	clients := flag.Int("clients", 100, "concurrent callers")
	conns := flag.Int("conns", 10, "connections")
	total := flag.Int("total", 50000, "requests in all")
	keySpace := flag.Int("key-space", 100000, "distinct keys")
	valueSize := flag.Int("value-size", 256, "value bytes")
	flag.Parse()

	cls := make([]*clientv3.Client, *conns)
	for i := range cls {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoint, ","), DialTimeout: 5 * time.Second})
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
	if *op == "range" {
		if _, err := cls[0].Put(context.Background(), keys[42], value); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
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
				var err error
				if *op == "put" {
					_, err = cli.Put(context.Background(), keys[int(i)%*keySpace], value)
				} else {
					if *linearizable {
						_, err = cli.Get(context.Background(), keys[42])
					} else {
						_, err = cli.Get(context.Background(), keys[42], clientv3.WithSerializable())
					}
				}
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
