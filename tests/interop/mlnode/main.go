// mlnode: one hashicorp/memberlist member configured the way MetalLB's speaker configures it
// (internal/speakerlist/speakerlist.go), for interop tests against our Python speakers.
//
// Built in GOPATH mode from Debian's golang-github-hashicorp-memberlist-dev (0.2.2, same wire format and
// timing as MetalLB's v0.5.1). stdout carries one JSON object per line:
//
//	{"event":"ready","t":...,"name":...,"addr":"ip:port"}        once listening (port 0 = chosen by memberlist)
//	{"event":"joined","t":...,"n":2,"error":""}                  after the -join attempt, if any
//	{"event":"join"|"leave"|"update","t":...,"name":...,"addr":...} one per memberlist NodeEvent
//	{"event":"members","t":...,"members":[{"name","addr","state"}]} on SIGUSR1 (or "members" on stdin)
//
// "t" is the Unix time in seconds with nanosecond digits, taken when the event reached us.
// SIGTERM/SIGINT (or "leave" on stdin): Leave(1s), Shutdown(), exit 0, as the speaker's Stop() does.
// memberlist's own log goes to stderr.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

type joinList []string

func (j *joinList) String() string { return strings.Join(*j, ",") }
func (j *joinList) Set(v string) error {
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			*j = append(*j, a)
		}
	}
	return nil
}

var (
	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)
)

// emit writes one JSON line; the mutex keeps lines from the event, signal and stdin goroutines whole.
func emit(kind string, fields map[string]interface{}) {
	now := time.Now()
	fields["event"] = kind
	fields["t"] = json.Number(fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()))
	outMu.Lock()
	defer outMu.Unlock()
	if err := out.Encode(fields); err != nil {
		log.Fatalf("mlnode: stdout: %v", err)
	}
}

func addrOf(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

var stateNames = map[memberlist.NodeStateType]string{
	memberlist.StateAlive: "alive", memberlist.StateSuspect: "suspect",
	memberlist.StateDead: "dead", memberlist.StateLeft: "left",
}

func emitMembers(ml *memberlist.Memberlist) {
	nodes := ml.Members()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	members := make([]map[string]string, 0, len(nodes))
	for _, n := range nodes {
		members = append(members, map[string]string{"name": n.Name, "addr": addrOf(n), "state": stateNames[n.State]})
	}
	emit("members", map[string]interface{}{"members": members})
}

// stop is the speaker's Stop(): announce the leave (waiting at most 1 s for it to go out), then close.
func stop(ml *memberlist.Memberlist) {
	if err := ml.Leave(time.Second); err != nil {
		log.Printf("mlnode: leave: %v", err)
	}
	if err := ml.Shutdown(); err != nil {
		log.Printf("mlnode: shutdown: %v", err)
	}
	os.Exit(0)
}

func main() {
	name := flag.String("name", "", "memberlist node name (MetalLB: the Kubernetes node name)")
	bind := flag.String("bind", "127.0.0.1", "BindAddr (MetalLB: the pod IP)")
	port := flag.Int("port", 7946, "BindPort = AdvertisePort; 0 lets memberlist choose")
	secretFile := flag.String("secret-file", "", "file whose content, unmodified, is MetalLB's memberlist secret")
	probeInterval := flag.Duration("probe-interval", 0, "ProbeInterval (0 = DefaultLANConfig)")
	probeTimeout := flag.Duration("probe-timeout", 0, "ProbeTimeout (0 = DefaultLANConfig)")
	suspicionMult := flag.Int("suspicion-mult", 0, "SuspicionMult (0 = DefaultLANConfig)")
	gossipInterval := flag.Duration("gossip-interval", 0, "GossipInterval (0 = DefaultLANConfig)")
	var join joinList
	flag.Var(&join, "join", "host:port to join (repeatable, or a comma list)")
	flag.Parse()
	log.SetOutput(os.Stderr)
	if *name == "" {
		log.Fatal("mlnode: -name is required")
	}

	cfg := memberlist.DefaultLANConfig()
	cfg.Name = *name
	cfg.BindAddr = *bind
	cfg.BindPort = *port
	cfg.AdvertisePort = *port
	cfg.LogOutput = os.Stderr
	if *secretFile != "" {
		secret, err := os.ReadFile(*secretFile)
		if err != nil {
			log.Fatalf("mlnode: %v", err)
		}
		// MetalLB's derivation, quirk included: Sum(b) appends sha256("") to b, so the key is the first 32
		// bytes of secret || sha256("") rather than sha256(secret).
		cfg.SecretKey = sha256.New().Sum(secret)[:32]
	}
	// MetalLB >= 0.16 overwrites these from config.json; zero keeps the default here.
	if *probeInterval > 0 {
		cfg.ProbeInterval = *probeInterval
	}
	if *probeTimeout > 0 {
		cfg.ProbeTimeout = *probeTimeout
	}
	if *suspicionMult > 0 {
		cfg.SuspicionMult = *suspicionMult
	}
	if *gossipInterval > 0 {
		cfg.GossipInterval = *gossipInterval
	}
	events := make(chan memberlist.NodeEvent, 1024) // MetalLB's buffer size
	cfg.Events = &memberlist.ChannelEventDelegate{Ch: events}

	// Catch signals before "ready" so a harness may signal as soon as it has read that line.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)

	ml, err := memberlist.Create(cfg)
	if err != nil {
		log.Fatalf("mlnode: create: %v", err)
	}
	go func() {
		kinds := map[memberlist.NodeEventType]string{
			memberlist.NodeJoin: "join", memberlist.NodeLeave: "leave", memberlist.NodeUpdate: "update",
		}
		for ev := range events {
			emit(kinds[ev.Event], map[string]interface{}{"name": ev.Node.Name, "addr": addrOf(ev.Node)})
		}
	}()
	emit("ready", map[string]interface{}{"name": *name, "addr": addrOf(ml.LocalNode())})

	if len(join) > 0 {
		n, err := ml.Join(join)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		emit("joined", map[string]interface{}{"n": n, "error": msg})
	}

	// stdin control, for callers that prefer lines to signals; EOF just ends this reader.
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			switch strings.TrimSpace(scanner.Text()) {
			case "members":
				emitMembers(ml)
			case "leave":
				stop(ml)
			}
		}
	}()

	for sig := range sigs {
		if sig == syscall.SIGUSR1 {
			emitMembers(ml)
		} else {
			stop(ml)
		}
	}
}
