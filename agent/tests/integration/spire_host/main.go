// spire-host loads an external WorkloadAttestor plugin the way the SPIRE
// agent does, for agent/tests/spire_plugin.rs. It is built by that test from
// Debian's Go packages (GOPATH mode, offline).
//
// It reads a SPIRE agent config (HCL, parsed with hashicorp/hcl v1 as SPIRE
// does), finds the WorkloadAttestor block, turns its plugin_data block back
// into HCL text with the same printer SPIRE uses, starts plugin_cmd with
// plugin_args through a go-plugin client (handshake config, checksum, gRPC
// only, broker id 1 accepted as SPIRE's catalog does), and then calls the
// plugin's services in SPIRE's order: health check, Init, Configure, Validate,
// Attest for each -pid, AttestReference for each -refs entry (a
// proctor.v1.ProcessReference) and -pidrefs pid (a SPIFFE
// WorkloadPIDReference), AttestReference with a type no plugin knows, Deinit,
// and finally shuts it down.
// What happened is printed as one JSON object on stdout.
//
// With -dump it only prints the plugin block of the config as JSON.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/printer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"google.golang.org/protobuf/proto"

	configv1 "proctor.test/spire/configv1"
	initv1 "proctor.test/spire/initv1"
	proctorv1 "proctor.test/spire/proctorv1"
	workloadattestorv1 "proctor.test/spire/workloadattestorv1"
)

// pidReferenceTypeURL is the type SPIRE packs a pid in for AttestReference.
// WorkloadPIDReference is `int32 pid = 1`, the wire form of Int32Value.
const pidReferenceTypeURL = "type.googleapis.com/spiffe.reference.WorkloadPIDReference"

// processRef is one -refs entry.
type processRef struct {
	Pid         int32   `json:"pid"`
	StartTimeNs *uint64 `json:"start_time_ns"`
	ExecID      *string `json:"exec_id"`
}

type referenceResult struct {
	TypeURL   string     `json:"type_url"`
	Pid       int32      `json:"pid"`
	Selectors []string   `json:"selectors"`
	Error     *callError `json:"error"`
}

const pluginType = "WorkloadAttestor"

// hostServiceProviderID is the broker id SPIRE serves host services on.
const hostServiceProviderID = 1

type pluginConfig struct {
	PluginCmd      string   `hcl:"plugin_cmd" json:"plugin_cmd"`
	PluginArgs     []string `hcl:"plugin_args" json:"plugin_args"`
	PluginChecksum string   `hcl:"plugin_checksum" json:"plugin_checksum"`
	PluginData     ast.Node `hcl:"plugin_data" json:"-"`
}

type callError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type attestResult struct {
	Pid       int32      `json:"pid"`
	Selectors []string   `json:"selectors"`
	Error     *callError `json:"error"`
}

type report struct {
	PluginData          string            `json:"plugin_data"`
	SocketAddr          string            `json:"socket_addr"`
	SocketMode          string            `json:"socket_mode"`
	SocketGid           int               `json:"socket_gid"`
	PluginServiceNames  []string          `json:"plugin_service_names"`
	ConfigureError      *callError        `json:"configure_error"`
	ValidateValid       bool              `json:"validate_valid"`
	ValidateNotes       []string          `json:"validate_notes"`
	Attest              []attestResult    `json:"attest"`
	AttestReference     []referenceResult `json:"attest_reference"`
	AttestReferenceCode string            `json:"attest_reference_code"`
	AttestReferenceMsg  string            `json:"attest_reference_message"`
	SocketGoneAfterKill bool              `json:"socket_gone_after_kill"`
}

func toCallError(err error) *callError {
	if err == nil {
		return nil
	}
	s, _ := status.FromError(err)
	return &callError{Code: s.Code().String(), Message: s.Message()}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "spire-host: "+format+"\n", args...)
	os.Exit(2)
}

// loadConfig finds WorkloadAttestor "<name>" in the plugins block.
func loadConfig(path, name string) (pluginConfig, string) {
	text, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	var root struct {
		Plugins map[string]map[string]pluginConfig `hcl:"plugins"`
	}
	if err := hcl.Decode(&root, string(text)); err != nil {
		fail("parse %s: %v", path, err)
	}
	pc, ok := root.Plugins[pluginType][name]
	if !ok {
		fail("%s has no plugins { %s %q { ... } }", path, pluginType, name)
	}
	data := ""
	if pc.PluginData != nil {
		var buf bytes.Buffer
		if err := printer.DefaultConfig.Fprint(&buf, pc.PluginData); err != nil {
			fail("print plugin_data: %v", err)
		}
		data = buf.String()
	}
	return pc, data
}

// hcClientPlugin is the host side of the plugin, as in SPIRE's catalog.
type hcClientPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (p *hcClientPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return fmt.Errorf("not implemented host side")
}

func (p *hcClientPlugin) GRPCClient(ctx context.Context, b *goplugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	listener, err := b.Accept(hostServiceProviderID)
	if err != nil {
		return nil, err
	}
	// No host services are offered; the server only has to exist.
	server := grpc.NewServer()
	go server.Serve(listener)
	return c, nil
}

func main() {
	confPath := flag.String("config", "", "SPIRE agent config (HCL) with the plugin's block")
	name := flag.String("name", "proctor", "the plugin's name in the config")
	dump := flag.Bool("dump", false, "print the plugin block as JSON and exit")
	cookie := flag.String("cookie", pluginType, "magic cookie value to hand the plugin")
	pidList := flag.String("pids", "", "comma-separated pids to attest")
	refList := flag.String("refs", "", "JSON array of proctor.v1.ProcessReference to attest by reference")
	pidRefList := flag.String("pidrefs", "", "comma-separated pids to attest as WorkloadPIDReference")
	pluginStderr := flag.String("plugin-stderr", "", "also write the plugin's raw stderr lines to this file")
	flag.Parse()

	pc, data := loadConfig(*confPath, *name)
	if *dump {
		out, _ := json.Marshal(map[string]interface{}{
			"plugin_cmd":      pc.PluginCmd,
			"plugin_args":     pc.PluginArgs,
			"plugin_checksum": pc.PluginChecksum,
			"plugin_data":     data,
		})
		fmt.Println(string(out))
		return
	}

	sum, err := hex.DecodeString(pc.PluginChecksum)
	if err != nil || len(sum) != sha256.Size {
		fail("plugin_checksum is not a hex sha256")
	}
	cmdPath, err := filepath.Abs(pc.PluginCmd)
	if err != nil {
		fail("%v", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "spire-host", Output: os.Stderr, Level: hclog.Debug})
	// go-plugin copies the plugin's stderr lines here as read, before it
	// parses them and re-logs them through logger.
	var rawStderr io.Writer
	if *pluginStderr != "" {
		f, err := os.Create(*pluginStderr)
		if err != nil {
			fail("%v", err)
		}
		defer f.Close()
		rawStderr = f
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  1,
			MagicCookieKey:   pluginType,
			MagicCookieValue: *cookie,
		},
		Cmd:              exec.Command(cmdPath, pc.PluginArgs...),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Plugins:          map[string]goplugin.Plugin{*name: &hcClientPlugin{}},
		Logger:           logger,
		Stderr:           rawStderr,
		SecureConfig:     &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
	})
	defer client.Kill()

	rpcClient, err := client.Client()
	if err != nil {
		fail("failed to launch plugin: %v", err)
	}
	raw, err := rpcClient.Dispense(*name)
	if err != nil {
		fail("dispense: %v", err)
	}
	conn := raw.(*grpc.ClientConn)
	if err := rpcClient.Ping(); err != nil {
		fail("health check: %v", err)
	}

	rep := report{PluginData: data, SocketGid: -1}
	if rc := client.ReattachConfig(); rc != nil && rc.Addr != nil {
		rep.SocketAddr = rc.Addr.String()
		if st, err := os.Stat(rep.SocketAddr); err == nil {
			rep.SocketMode = strconv.FormatUint(uint64(st.Mode().Perm()), 8)
			rep.SocketGid = statGid(st)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	initResp, err := initv1.NewInitClient(conn).Init(ctx, &initv1.InitRequest{})
	if err != nil {
		fail("Init: %v", err)
	}
	rep.PluginServiceNames = initResp.PluginServiceNames

	core := &configv1.CoreConfiguration{TrustDomain: "example.org"}
	cfg := configv1.NewConfigClient(conn)
	_, err = cfg.Configure(ctx, &configv1.ConfigureRequest{CoreConfiguration: core, HclConfiguration: data})
	rep.ConfigureError = toCallError(err)
	vr, err := cfg.Validate(ctx, &configv1.ValidateRequest{CoreConfiguration: core, HclConfiguration: data})
	if err != nil {
		fail("Validate: %v", err)
	}
	rep.ValidateValid, rep.ValidateNotes = vr.Valid, vr.Notes

	wa := workloadattestorv1.NewWorkloadAttestorClient(conn)
	rep.Attest = []attestResult{}
	for _, p := range strings.Split(*pidList, ",") {
		if p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil {
			fail("bad pid %q", p)
		}
		resp, err := wa.Attest(ctx, &workloadattestorv1.AttestRequest{Pid: int32(pid)})
		r := attestResult{Pid: int32(pid), Error: toCallError(err), Selectors: []string{}}
		if err == nil && resp.SelectorValues != nil {
			r.Selectors = resp.SelectorValues
		}
		rep.Attest = append(rep.Attest, r)
	}
	rep.AttestReference = []referenceResult{}
	attestRef := func(ref *anypb.Any, pid int32) {
		resp, err := wa.AttestReference(ctx, &workloadattestorv1.AttestReferenceRequest{Reference: ref})
		r := referenceResult{TypeURL: ref.TypeUrl, Pid: pid, Error: toCallError(err), Selectors: []string{}}
		if err == nil && resp.SelectorValues != nil {
			r.Selectors = resp.SelectorValues
		}
		rep.AttestReference = append(rep.AttestReference, r)
	}
	if *refList != "" {
		var refs []processRef
		if err := json.Unmarshal([]byte(*refList), &refs); err != nil {
			fail("-refs: %v", err)
		}
		for _, r := range refs {
			ref, err := anypb.New(&proctorv1.ProcessReference{Pid: r.Pid, StartTimeNs: r.StartTimeNs, ExecId: r.ExecID})
			if err != nil {
				fail("pack %+v: %v", r, err)
			}
			attestRef(ref, r.Pid)
		}
	}
	for _, p := range strings.Split(*pidRefList, ",") {
		if p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil {
			fail("bad pid %q", p)
		}
		value, _ := proto.Marshal(wrapperspb.Int32(int32(pid)))
		attestRef(&anypb.Any{TypeUrl: pidReferenceTypeURL, Value: value}, int32(pid))
	}
	// A reference type the plugin cannot know.
	ref, _ := anypb.New(wrapperspb.Int32(1))
	_, err = wa.AttestReference(ctx, &workloadattestorv1.AttestReferenceRequest{Reference: ref})
	rep.AttestReferenceCode = status.Code(err).String()
	if s, ok := status.FromError(err); ok {
		rep.AttestReferenceMsg = s.Message()
	}

	if _, err := initv1.NewInitClient(conn).Deinit(ctx, &initv1.DeinitRequest{}); err != nil {
		fail("Deinit: %v", err)
	}
	// Kill asks the plugin to shut down (GRPCController.Shutdown) and waits
	// for it; a plugin that exits cleanly removes its socket.
	client.Kill()
	if rep.SocketAddr != "" {
		_, err := os.Stat(rep.SocketAddr)
		rep.SocketGoneAfterKill = os.IsNotExist(err)
	}
	out, _ := json.Marshal(rep)
	fmt.Println(string(out))
}

func statGid(st os.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Gid)
	}
	return -1
}
