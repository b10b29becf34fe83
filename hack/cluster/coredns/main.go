// Command coredns is CoreDNS with only the plugins the local cluster needs: it answers the cluster.local zone from
// the apiserver (Services, their endpoints) so that pods reach Services by name, as on any cluster. Built from the
// Go module proxy as a library (coremain), because no image registry is reachable to pull the CoreDNS image.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins this cluster's Corefile (hack/cluster/up.sh) uses.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives lists the plugins in the order CoreDNS runs them (the order of its plugin.cfg).
var directives = []string{"bind", "ready", "errors", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
