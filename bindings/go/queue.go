package statefulroute

// #cgo noescape sr_client_compute_linked_pod_uncached_submit
// #include "stateful_route.h"
import "C"

import (
	"os"
	"runtime"
	"sync"
)

// A miss of ComputeLinkedPod waits as a goroutine, not as a thread: the call is submitted to
// the library, which runs it on the calling thread until it would wait (a memory store or a
// single-flight answer comes back at once), then completes it on its runtime into one
// process-wide completion queue and
// writes a byte to the queue's pipe; one goroutine reads the pipe through the netpoller and
// hands each result to its caller. A thousand goroutines waiting for Redis cost a thousand
// parked goroutines, not a thousand OS threads parked in cgo calls.

type completion struct {
	pod    int64
	status uint32
	err    *C.sr_error
}

var completions struct {
	mu      sync.Mutex
	queue   *C.sr_completion_queue
	next    uint64
	waiting map[uint64]chan completion
}

var replies = sync.Pool{New: func() any { return make(chan completion, 1) }}

// completionQueue is the process's queue, made (with its reader) on first use; a failure
// (e.g. out of file descriptors) is retried at the next call. Called with completions.mu held.
func completionQueue() (*C.sr_completion_queue, error) {
	if completions.queue != nil {
		return completions.queue, nil
	}
	var fd C.int
	var q *C.sr_completion_queue
	if err := call(func(e **C.sr_error) uint32 { return C.sr_completion_queue_new(&fd, &q, e) }); err != nil {
		return nil, err
	}
	completions.queue = q
	completions.waiting = map[uint64]chan completion{}
	// The queue owns the fd and lives as long as the process: the File is never closed.
	go readCompletions(os.NewFile(uintptr(fd), "stateful-route completions"), q)
	return q, nil
}

func readCompletions(pipe *os.File, q *C.sr_completion_queue) {
	var wake [256]byte
	var batch [256]C.sr_completion
	for {
		// Parks this goroutine in the netpoller until a completion arrives (the pipe is
		// non-blocking, so os.NewFile made it pollable).
		if _, err := pipe.Read(wake[:]); err != nil {
			panic("stateful-route: reading the completion pipe: " + err.Error())
		}
		for {
			n := int(C.sr_completion_queue_drain(q, &batch[0], C.size_t(len(batch))))
			completions.mu.Lock()
			for _, c := range batch[:n] {
				ch, ok := completions.waiting[uint64(c.tag)]
				if !ok { // not ours (cannot happen): drop it
					C.sr_error_free(c.error)
					continue
				}
				delete(completions.waiting, uint64(c.tag))
				ch <- completion{pod: int64(c.pod), status: uint32(c.status), err: c.error}
			}
			completions.mu.Unlock()
			if n < len(batch) {
				break
			}
		}
	}
}

// computeSubmitted is ComputeLinkedPod's store half through the completion queue.
func (c *ClientDriver) computeSubmitted(namespace, uid, service string) (int, error) {
	ch := replies.Get().(chan completion)
	completions.mu.Lock()
	q, err := completionQueue()
	if err != nil {
		completions.mu.Unlock()
		replies.Put(ch)
		return -1, err
	}
	completions.next++
	tag := completions.next
	completions.waiting[tag] = ch
	completions.mu.Unlock()
	var e *C.sr_error
	var pod C.int64_t
	st := C.sr_client_compute_linked_pod_uncached_submit(c.ptr, str(namespace), str(uid), str(service), q, C.uint64_t(tag), &pod, &e)
	if st != C.SR_OK || pod >= 0 { // answered at once (or refused): nothing was queued
		completions.mu.Lock()
		delete(completions.waiting, tag)
		completions.mu.Unlock()
		replies.Put(ch)
		runtime.KeepAlive(c)
		return podOrError(pod, st, e)
	}
	// Exactly one completion comes (a call that ends without an answer completes with
	// ErrInternal), within the store's command timeout.
	r := <-ch
	replies.Put(ch)
	runtime.KeepAlive(c)
	return podOr(C.int64_t(r.pod), takeError(r.status, r.err))
}
