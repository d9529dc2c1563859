// Command sizeprobe measures what importing the cluster package adds to a
// binary, for docs/design/cluster.md: build it with and without the
// withcluster tag and compare the sizes. Run, it prints its resident memory
// (the baseline of an idle Go process).
package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "start" {
		if err := start(); err != nil {
			fmt.Println(err)
		}
	}
	time.Sleep(5 * time.Second)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, _ := os.ReadFile("/proc/self/status")
	var rss []byte
	for line := range bytes.Lines(status) {
		for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:"} {
			if rest, ok := bytes.CutPrefix(line, []byte(k)); ok {
				rss = fmt.Appendf(rss, "%s%s ", k, bytes.ReplaceAll(bytes.TrimSpace(rest), []byte(" "), nil))
			}
		}
	}
	fmt.Printf("%sheap_inuse=%dKB sys=%dKB goroutines=%d\n",
		rss, ms.HeapInuse>>10, ms.Sys>>10, runtime.NumGoroutine())
}
