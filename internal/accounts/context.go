package accounts

import "context"

type dialectKey struct{}

// WithDialect tags ctx with the API dialect serving the request, so that the
// core's metrics and logs say which one ("ideapool", "jsonrpc", "v1auth",
// "userauth").
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

type clientAddrKey struct{}

// WithClientAddr tags ctx with the client's network address, for the
// per-address login throttle.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func clientAddrOf(ctx context.Context) string {
	a, _ := ctx.Value(clientAddrKey{}).(string)
	return a
}
