// Command pause is the local cluster's pod sandbox image: it holds a pod's namespaces, reaps orphaned children and
// exits on SIGINT or SIGTERM. registry.k8s.io cannot be reached here, so hack/cluster/up.sh builds this instead of
// pulling registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go reap()
	<-stop
}

// reap waits for every child that ends, so that none stays a zombie in the pod's PID namespace.
func reap() {
	for {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(-1, &ws, 0, nil); err != nil {
			time.Sleep(time.Second) // no children now (ECHILD): look again later
		}
	}
}
