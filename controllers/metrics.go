package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ideapool/ideapool/internal/keyset"
)

// Operator metrics, registered on controller-runtime's registry next to its
// built-in controller_runtime_reconcile_* metrics:
//
//   - ideapool_key_rotations_total{namespace,name,reason}: keys generated
//     by the operator, counted once per operation, by why: Bootstrap (the
//     first key), Schedule (the next key of the regular rotation),
//     RotationRequested (the rotate-keys annotation), Revoked (the
//     revoke-key annotation).
//   - ideapool_signing_key_info{namespace,name,kid,state}: 1 for every key
//     in the keyset, with its state (Next, Active, Retired) at the last
//     reconcile.
//   - ideapool_next_key_rotation_timestamp_seconds{namespace,name}: when the
//     next key starts signing, in Unix seconds.
var (
	keyRotations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ideapool_key_rotations_total",
		Help: "Key rotations by the operator (each operation once, however many keys it generated), by IdeasApp and reason (Bootstrap, Schedule, RotationRequested, Revoked).",
	}, []string{"namespace", "name", "reason"})

	signingKeyInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ideapool_signing_key_info",
		Help: "1 for every signing key of an IdeasApp, with its state (Next, Active, Retired).",
	}, []string{"namespace", "name", "kid", "state"})

	nextRotation = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ideapool_next_key_rotation_timestamp_seconds",
		Help: "When the next signing key of an IdeasApp starts signing, in Unix seconds.",
	}, []string{"namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(keyRotations, signingKeyInfo, nextRotation)
}

// recordKeyMetrics replaces the key series of one IdeasApp with ks at now.
func recordKeyMetrics(namespace, name string, ks keyset.Keyset, rotations []keyset.Reason, now time.Time) {
	for _, r := range rotations {
		keyRotations.WithLabelValues(namespace, name, string(r)).Inc()
	}
	app := prometheus.Labels{"namespace": namespace, "name": name}
	signingKeyInfo.DeletePartialMatch(app)
	for _, k := range ks.Keys {
		signingKeyInfo.WithLabelValues(namespace, name, k.ID, string(keyset.State(k, now))).Set(1)
	}
	if k, ok := nextKey(ks, now); ok {
		nextRotation.WithLabelValues(namespace, name).Set(float64(k.ActiveAt.Unix()))
	} else {
		nextRotation.DeletePartialMatch(app)
	}
}

// forgetKeyMetrics drops the series of a deleted IdeasApp.
func forgetKeyMetrics(namespace, name string) {
	app := prometheus.Labels{"namespace": namespace, "name": name}
	keyRotations.DeletePartialMatch(app)
	signingKeyInfo.DeletePartialMatch(app)
	nextRotation.DeletePartialMatch(app)
}
