package accounts

import "context"

// The facts of a request that only its adapter knows (which dialect, from
// which address, under which request id, by whom), carried to the core's
// metrics, throttle and audit log through the context.

type (
	dialectKey    struct{}
	clientAddrKey struct{}
	requestIDKey  struct{}
	actorKey      struct{}
)

// WithDialect tags ctx with the API dialect serving the request, so that the
// core's metrics and logs say which one ("ideapool", "jsonrpc", "v1auth",
// "userauth", "cli").
func WithDialect(ctx context.Context, dialect string) context.Context {
	return context.WithValue(ctx, dialectKey{}, dialect)
}

// DialectOf returns the dialect of ctx, "unknown" when untagged.
func DialectOf(ctx context.Context) string {
	if d, ok := ctx.Value(dialectKey{}).(string); ok {
		return d
	}
	return "unknown"
}

// WithClientAddr tags ctx with the client's network address, for the
// per-address login throttle and the audit log.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func clientAddrOf(ctx context.Context) string {
	a, _ := ctx.Value(clientAddrKey{}).(string)
	return a
}

// WithRequestID tags ctx with the request id the client was answered with,
// so that an audit line can be matched with the request's own log line.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestIDOf(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// WithActor names who acts where no account does: "cli" for the operators'
// command line. Requests made with an account's token name that account
// instead.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}
