// go-watch: watch and lease keep-alive load for etcd v3 servers on the official Go client
// (clientv3), built like bench/go-load from Debian's Go sources (GOPATH mode, no network).
//
//	go-watch -op watch -endpoint 127.0.0.1:2379 -watchers 1000 -conns 10 -rate 100 -puts 1000
//	    1000 prefix watchers on one member (spread over -conns clients, so one watch stream per
//	    client) and an open-loop put load at -rate puts/s from a separate client. Each value
//	    carries its send time, so every delivered event yields one put -> event latency.
//	go-watch -op keepalive -endpoint 127.0.0.1:2379 -leases 1000 -streams 100 -total 200000
//	    -leases leases, then -streams LeaseKeepAlive streams each sending one keep-alive and
//	    awaiting its answer in a loop (closed loop) until -total answers.
//
// Prints one JSON line with the counts, the rate, and p50/p90/p99/max latency in ms.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
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
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func percentiles(latencies []float64) map[string]float64 {
	if len(latencies) == 0 {
		return map[string]float64{"p50Ms": 0, "p90Ms": 0, "p99Ms": 0, "maxMs": 0}
	}
	sort.Float64s(latencies)
	at := func(q float64) float64 { return latencies[int(q*float64(len(latencies)-1))] }
	return map[string]float64{"p50Ms": at(0.5), "p90Ms": at(0.9), "p99Ms": at(0.99), "maxMs": latencies[len(latencies)-1]}
}

// processStart is when main began (Unix ns): -dump writes it, so that the times Go's own
// GODEBUG=gctrace=1 prints (seconds since the start) can be put beside the puts.
var processStart = time.Now().UnixNano()

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoint(s), comma-separated")
	op := flag.String("op", "watch", "watch or keepalive")
	conns := flag.Int("conns", 10, "clients (connections)")
	watchers := flag.Int("watchers", 1000, "watch: prefix watchers")
	rate := flag.Int("rate", 100, "watch: puts per second")
	puts := flag.Int("puts", 1000, "watch: puts in all")
	valueSize := flag.Int("value-size", 64, "watch: value bytes (>= 8)")
	leases := flag.Int("leases", 1000, "keepalive: leases")
	streams := flag.Int("streams", 100, "keepalive: keep-alive streams")
	total := flag.Int("total", 200000, "keepalive: keep-alives in all")
	dump := flag.String("dump", "", "watch: write every put and event, with their times, to this CSV file")
	flag.Parse()

	cls := make([]*clientv3.Client, *conns+1)
	for i := range cls {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoint, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			fail(err)
		}
		cls[i] = c
	}
	defer func() {
		for _, c := range cls {
			c.Close()
		}
	}()
	var out map[string]interface{}
	if *op == "watch" {
		out = runWatch(cls[:*conns], cls[*conns], *watchers, *rate, *puts, *valueSize, *dump)
	} else {
		out = runKeepAlive(cls[:*conns], *leases, *streams, *total)
	}
	text, _ := json.Marshal(out)
	fmt.Println(string(text))
}

func runWatch(cls []*clientv3.Client, putter *clientv3.Client, watchers, rate, puts, valueSize int, dump string) map[string]interface{} {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		latencies []float64
		events    []dumpEvent
		disorder  int
		last      time.Time
	}
	results := make([]result, watchers)
	var created, finished sync.WaitGroup
	var received int64
	for w := 0; w < watchers; w++ {
		created.Add(1)
		finished.Add(1)
		ch := cls[w%len(cls)].Watch(ctx, "wb/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		go func(w int, ch clientv3.WatchChan) {
			defer finished.Done()
			r := &results[w]
			r.latencies = make([]float64, 0, puts)
			if dump != "" {
				r.events = make([]dumpEvent, 0, puts)
			}
			lastRev := int64(0)
			first := true
			for resp := range ch {
				if first {
					first = false
					created.Done()
				}
				now := time.Now()
				for _, e := range resp.Events {
					sent := int64(binary.BigEndian.Uint64(e.Kv.Value[:8]))
					r.latencies = append(r.latencies, float64(now.UnixNano()-sent)/1e6)
					if dump != "" {
						r.events = append(r.events, dumpEvent{e.Kv.ModRevision, sent, now.UnixNano()})
					}
					if e.Kv.ModRevision <= lastRev {
						r.disorder++
					}
					lastRev = e.Kv.ModRevision
				}
				atomic.AddInt64(&received, int64(len(resp.Events)))
				r.last = now
				if len(r.latencies) >= puts {
					return
				}
			}
		}(w, ch)
	}
	created.Wait()

	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var putErrors int64
	var inflight sync.WaitGroup
	// The puts' own latency (send -> answer), so that an event's latency can be split into the
	// put's path and what the event takes after it.
	putLatencies := make([]float64, puts)
	putSent := make([]int64, puts)
	for i := 0; i < puts; i++ {
		// Open loop: put i is due at start + i*interval whatever earlier puts are doing.
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		value := make([]byte, valueSize)
		sentAt := time.Now()
		putSent[i] = sentAt.UnixNano()
		binary.BigEndian.PutUint64(value, uint64(sentAt.UnixNano()))
		inflight.Add(1)
		go func(i int, value []byte) {
			defer inflight.Done()
			if _, err := putter.Put(context.Background(), fmt.Sprintf("wb/%06d", i%100), string(value)); err != nil {
				atomic.AddInt64(&putErrors, 1)
			}
			putLatencies[i] = float64(time.Since(sentAt).Nanoseconds()) / 1e6
		}(i, value)
	}
	inflight.Wait()
	putSeconds := time.Since(start).Seconds()
	done := make(chan struct{})
	go func() { finished.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
	}
	cancel()
	var all []float64
	var disorder int
	last := start
	for i := range results {
		all = append(all, results[i].latencies...)
		disorder += results[i].disorder
		if results[i].last.After(last) {
			last = results[i].last
		}
	}
	seconds := last.Sub(start).Seconds()
	out := map[string]interface{}{
		"op": "watch", "watchers": watchers, "puts": puts, "putErrors": putErrors, "putRate": float64(puts) / putSeconds,
		"expectedEvents": int64(watchers) * int64(puts), "events": atomic.LoadInt64(&received), "outOfOrder": disorder,
		"seconds": seconds, "eventsPerSecond": float64(len(all)) / seconds,
	}
	if dump != "" {
		perWatcher := make([][]dumpEvent, len(results))
		for w := range results {
			perWatcher[w] = results[w].events
		}
		writeDump(dump, len(cls), putSent, putLatencies, perWatcher)
	}
	for k, v := range percentiles(all) {
		out[k] = v
	}
	for k, v := range percentiles(putLatencies) {
		out["put"+strings.ToUpper(k[:1])+k[1:]] = v
	}
	return out
}

// One delivered event, for -dump: its revision, the put's send time (its stamp) and when the
// watcher got it (Unix ns).
type dumpEvent struct {
	revision, sentNs, receivedNs int64
}

// writeDump writes the process's start ("start,unixNs"), one CSV line per put ("put,index,sentNs,answerMs") and per delivered event
// ("event,watcher,connection,revision,sentNs,receivedNs"); watcher w is on connection w % conns.
func writeDump(path string, conns int, putSent []int64, putLatencies []float64, perWatcher [][]dumpEvent) {
	f, err := os.Create(path)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	b := bufio.NewWriter(f)
	fmt.Fprintf(b, "start,%d\n", processStart)
	for i, sent := range putSent {
		fmt.Fprintf(b, "put,%d,%d,%.4f\n", i, sent, putLatencies[i])
	}
	for w, list := range perWatcher {
		for _, e := range list {
			fmt.Fprintf(b, "event,%d,%d,%d,%d,%d\n", w, w%conns, e.revision, e.sentNs, e.receivedNs)
		}
	}
	if err := b.Flush(); err != nil {
		fail(err)
	}
}

func runKeepAlive(cls []*clientv3.Client, leases, streams, total int) map[string]interface{} {
	ids := make([]clientv3.LeaseID, leases)
	var wg sync.WaitGroup
	var next int64 = -1
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(leases) {
					return
				}
				resp, err := cls[int(i)%len(cls)].Grant(context.Background(), 300)
				if err != nil {
					fail(err)
				}
				ids[i] = resp.ID
			}
		}(g)
	}
	wg.Wait()

	latencies := make([]float64, total)
	next = -1
	var errors int64
	start := time.Now()
	for s := 0; s < streams; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			client := pb.NewLeaseClient(cls[s%len(cls)].ActiveConnection())
			stream, err := client.LeaseKeepAlive(context.Background())
			if err != nil {
				fail(err)
			}
			defer stream.CloseSend()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(total) {
					return
				}
				t := time.Now()
				if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(ids[int(i)%leases])}); err != nil {
					fail(err)
				}
				resp, err := stream.Recv()
				if err != nil {
					fail(err)
				}
				if resp.TTL <= 0 {
					atomic.AddInt64(&errors, 1)
				}
				latencies[i] = float64(time.Since(t).Microseconds()) / 1000
			}
		}(s)
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	out := map[string]interface{}{
		"op": "keepalive", "leases": leases, "streams": streams, "ops": total, "errors": errors,
		"seconds": seconds, "opsPerSecond": float64(total) / seconds,
	}
	for k, v := range percentiles(latencies) {
		out[k] = v
	}
	return out
}
