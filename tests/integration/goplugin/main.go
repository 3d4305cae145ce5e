// A datasource backend plugin built the way Grafana's are: Go, grpc-go, and hashicorp/go-plugin's
// Serve (go-plugin handshake, grpc.health.v1, GRPCController, stdio). It has no generated code:
// messages are read and written with protowire, and a pass-through codec hands the bytes over.
// QueryData answers every query with the Grafana SDK's golden Arrow frame (golden.arrow, embedded
// at build time), or a gRPC error for refId "fail". CheckHealth answers OK.
//
// It also misbehaves on request, as a broken or hostile plugin would (DESIGN §8), by refId:
// "huge" replies with 100 MB, "badarrow" with a frame that is not Arrow, "badproto" with bytes that
// are not a QueryDataResponse, "hang" never answers, "exit" dies in the middle of the call. Its
// streams: "flood" sends packets as fast as gRPC takes them, "die" sends three and exits.
//
// It records the W3C trace context the host sent in the call's gRPC metadata, where Grafana's SDK
// reads it: query "trace" answers with it as an error text, and CheckHealth's message ends with it.
package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang/protobuf/proto"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

//go:embed golden.arrow
var golden []byte

// raw carries a message's bytes; everything else (go-plugin's own services) is protobuf.
type raw struct{ b []byte }

type codec struct{}

func (codec) Marshal(v interface{}) ([]byte, error) {
	if r, ok := v.(*raw); ok {
		return r.b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (codec) Unmarshal(data []byte, v interface{}) error {
	if r, ok := v.(*raw); ok {
		r.b = append([]byte(nil), data...)
		return nil
	}
	return proto.Unmarshal(data, v.(proto.Message))
}

func (codec) String() string { return "proto" }

// Calls fn for each length-delimited field `num` of the message.
func eachBytes(msg []byte, num protowire.Number, fn func([]byte)) error {
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return protowire.ParseError(l)
		}
		msg = msg[l:]
		if typ == protowire.BytesType && n == num {
			v, l := protowire.ConsumeBytes(msg)
			if l < 0 {
				return protowire.ParseError(l)
			}
			fn(v)
			msg = msg[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, msg)
		if l < 0 {
			return protowire.ParseError(l)
		}
		msg = msg[l:]
	}
	return nil
}

// traceContext is the call's traceparent and tracestate metadata, as one line.
func traceContext(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return fmt.Sprintf("traceparent=%s tracestate=%s",
		strings.Join(md.Get("traceparent"), ","), strings.Join(md.Get("tracestate"), ","))
}

func queryData(_ interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	in := &raw{}
	if err := dec(in); err != nil {
		return nil, err
	}
	var refIDs []string
	// QueryDataRequest.queries = 3; DataQuery.refId = 1.
	err := eachBytes(in.b, 3, func(query []byte) {
		_ = eachBytes(query, 1, func(id []byte) { refIDs = append(refIDs, string(id)) })
	})
	// QueryDataRequest.pluginContext = 1; PluginContext.user = 3; User.login = 1.
	login := ""
	_ = eachBytes(in.b, 1, func(ctx []byte) {
		_ = eachBytes(ctx, 3, func(user []byte) {
			_ = eachBytes(user, 1, func(l []byte) { login = string(l) })
		})
	})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var out []byte
	for _, id := range refIDs {
		switch id {
		case "fail":
			return nil, status.Error(codes.Internal, "go says no: 100% \u2717")
		case "badproto":
			// Field 1 as a length-delimited value longer than the message: not protobuf.
			return &raw{b: []byte{0x0a, 0xff, 0xff, 0x03, 'x'}}, nil
		case "hang":
			<-ctx.Done()
			return nil, ctx.Err()
		case "exit":
			os.Exit(3)
		}
		// DataResponse: frames = 1, error = 2, status = 4. Query "whoami" answers with the login
		// the host put into PluginContext.user, as an error text the test can read.
		var resp []byte
		if id == "whoami" {
			resp = protowire.AppendTag(resp, 2, protowire.BytesType)
			resp = protowire.AppendString(resp, "login="+login)
		} else if id == "trace" {
			resp = protowire.AppendTag(resp, 2, protowire.BytesType)
			resp = protowire.AppendString(resp, traceContext(ctx))
		} else if id == "huge" {
			resp = protowire.AppendTag(resp, 1, protowire.BytesType)
			resp = protowire.AppendBytes(resp, make([]byte, 100<<20))
		} else if id == "badarrow" {
			resp = protowire.AppendTag(resp, 1, protowire.BytesType)
			resp = protowire.AppendBytes(resp, []byte("ARROW1\x00\x00 this is not an Arrow IPC file"))
		} else {
			resp = protowire.AppendTag(resp, 1, protowire.BytesType)
			resp = protowire.AppendBytes(resp, golden)
		}
		resp = protowire.AppendTag(resp, 4, protowire.VarintType)
		resp = protowire.AppendVarint(resp, 200)
		// QueryDataResponse.responses = 1: map entry {key = 1, value = 2}.
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, id)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendBytes(entry, resp)
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, entry)
	}
	return &raw{b: out}, nil
}

func checkHealth(_ interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	in := &raw{}
	if err := dec(in); err != nil {
		return nil, err
	}
	// CheckHealthResponse: status = 1 (OK = 1), message = 2.
	var out []byte
	out = protowire.AppendTag(out, 1, protowire.VarintType)
	out = protowire.AppendVarint(out, 1)
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	out = protowire.AppendString(out, "go plugin ok; "+traceContext(ctx))
	return &raw{b: out}, nil
}

func subscribeStream(_ interface{}, _ context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	in := &raw{}
	if err := dec(in); err != nil {
		return nil, err
	}
	// SubscribeStreamResponse{status: OK (0)}: the empty message.
	return &raw{}, nil
}

// RunStream(RunStreamRequest) returns (stream StreamPacket): "flood" sends 1 KB packets as fast
// as the transport takes them until cancelled; "die" sends three packets, then the process exits.
func runStream(_ interface{}, stream grpc.ServerStream) error {
	in := &raw{}
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	path := ""
	// RunStreamRequest.path = 2.
	_ = eachBytes(in.b, 2, func(p []byte) { path = string(p) })
	pad := strings.Repeat("x", 1000)
	for n := 0; ; n++ {
		if path == "die" && n == 3 {
			// grpc-go queues what SendMsg is given: let the transport write it, then crash.
			time.Sleep(500 * time.Millisecond)
			os.Exit(3)
		}
		// StreamPacket.data = 1: one JSON object.
		var packet []byte
		packet = protowire.AppendTag(packet, 1, protowire.BytesType)
		packet = protowire.AppendString(packet, fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, pad))
		if err := stream.SendMsg(&raw{b: packet}); err != nil {
			return err
		}
		if path != "flood" && path != "die" {
			return nil
		}
	}
}

type datasource struct{ plugin.NetRPCUnsupportedPlugin }

func (datasource) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "pluginv2.Data",
		HandlerType: (*interface{})(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "QueryData", Handler: queryData}},
	}, struct{}{})
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "pluginv2.Diagnostics",
		HandlerType: (*interface{})(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "CheckHealth", Handler: checkHealth}},
	}, struct{}{})
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "pluginv2.Stream",
		HandlerType: (*interface{})(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "SubscribeStream", Handler: subscribeStream}},
		Streams: []grpc.StreamDesc{{StreamName: "RunStream", Handler: runStream, ServerStreams: true}},
	}, struct{}{})
	return nil
}

func (datasource) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		// Grafana's handshake: protocol version 2, magic cookie grafana_plugin_type=datasource.
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  2,
			MagicCookieKey:   "grafana_plugin_type",
			MagicCookieValue: "datasource",
		},
		Plugins: map[string]plugin.Plugin{"datasource": datasource{}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.CustomCodec(codec{}))...)
		},
	})
}
