// A Go program built with cgo (so libc, and LD_PRELOAD, are in it):
// goroutines spin on every thread Go makes while another allocates, so the
// garbage collector and Go's preemption signals (SIGURG) run meanwhile.
// Usage: gocgo GOROUTINES STATUS: prints the work's sum and exits STATUS.
package main

import "C"

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

//go:noinline
func spin(n int) uint64 {
	var sum uint64
	for i := 0; i < n; i++ {
		sum += uint64(i*i) % 7
	}
	return sum
}

func main() {
	goroutines, _ := strconv.Atoi(os.Args[1])
	status, _ := strconv.Atoi(os.Args[2])
	var wg sync.WaitGroup
	results := make([]uint64, goroutines)
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = spin(400000000 / goroutines)
		}(i)
	}
	stop := make(chan bool)
	go func() {
		var keep [][]byte
		for {
			select {
			case <-stop:
				return
			default:
				keep = append(keep, make([]byte, 4096))
				if len(keep) > 10000 {
					keep = nil
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	var total uint64
	for _, r := range results {
		total += r
	}
	fmt.Println("goroutines", goroutines, "sum", total)
	os.Exit(status)
}
