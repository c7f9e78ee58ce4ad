package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
)

// The key commands: rotate, revoke and keys.

// annotate sets one annotation with a JSON merge patch, which fails when the
// IdeasApp does not exist.
func annotate(ctx context.Context, apps dynamic.ResourceInterface, name, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	if _, err := apps.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: pluginName}); err != nil {
		return fmt.Errorf("annotate ideasapp %s: %w", name, err)
	}
	return nil
}

func pluginRotate(ctx context.Context, apps dynamic.ResourceInterface, name string, now time.Time, stdout io.Writer) error {
	// A new value each time: the operator handles each value once.
	value := now.UTC().Format(time.RFC3339Nano)
	if err := annotate(ctx, apps, name, contract.AnnotationRotateKeys, value); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "ideasapp/%s: rotation requested (%s=%s); the next key signs once every verifier can have it\n",
		name, contract.AnnotationRotateKeys, value)
	return err
}

func pluginRevoke(ctx context.Context, apps dynamic.ResourceInterface, name, kid string, stdout io.Writer) error {
	app, err := apps.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get ideasapp %s: %w", name, err)
	}
	keys, err := statusKeys(app)
	if err != nil {
		return err
	}
	known := make([]string, len(keys))
	state := ""
	for i, k := range keys {
		known[i] = k.KID
		if k.KID == kid {
			state = k.State
		}
	}
	if !slices.Contains(known, kid) {
		return fmt.Errorf("ideasapp %s has no key %q (its keys: %s)", name, kid, strings.Join(known, ", "))
	}
	if err := annotate(ctx, apps, name, contract.AnnotationRevokeKey, kid); err != nil {
		return err
	}
	// What the operator does depends on the key's state (internal/keyset.Revoke).
	effect := "it is removed from the JWKS"
	switch state {
	case string(keyset.StateActive):
		effect = "a fresh key signs at once and the revoked one leaves the JWKS; verifiers that cache the JWKS " +
			"(kube-apiserver among them) accept the fresh key's tokens once their copy expires, within the app's jwksMaxAge"
	case string(keyset.StateNext):
		effect = "it never signs: a new next key replaces it"
	}
	_, err = fmt.Fprintf(stdout, "ideasapp/%s: revocation of key %s requested (%s); %s\n", name, kid, contract.AnnotationRevokeKey, effect)
	return err
}

// keyRow is one entry of status.keys.
type keyRow struct {
	KID         string     `json:"kid"`
	Algorithm   string     `json:"algorithm"`
	State       string     `json:"state"`
	PublishedAt *time.Time `json:"publishedAt"`
	ActiveAt    *time.Time `json:"activeAt"`
	RetiredAt   *time.Time `json:"retiredAt"`
	RemoveAfter *time.Time `json:"removeAfter"`
}

func statusKeys(app *unstructured.Unstructured) ([]keyRow, error) {
	raw, _, err := unstructured.NestedSlice(app.Object, "status", "keys")
	if err != nil {
		return nil, fmt.Errorf("ideasapp %s: status.keys: %w", app.GetName(), err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var rows []keyRow
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("ideasapp %s: status.keys: %w", app.GetName(), err)
	}
	return rows, nil
}

func pluginKeys(ctx context.Context, apps dynamic.ResourceInterface, name string, stdout io.Writer) error {
	app, err := apps.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get ideasapp %s: %w", name, err)
	}
	rows, err := statusKeys(app)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintf(stdout, "ideasapp/%s has no keys in its status yet (is the operator running?)\n", name)
		return err
	}
	active, _, _ := unstructured.NestedString(app.Object, "status", "activeKeyID")
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tKID\tALGORITHM\tSTATE\tPUBLISHED\tACTIVE\tRETIRED\tREMOVE AFTER")
	for _, r := range rows {
		mark := ""
		if r.KID == active {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, r.KID, r.Algorithm, r.State,
			stamp(r.PublishedAt), stamp(r.ActiveAt), stamp(r.RetiredAt), stamp(r.RemoveAfter))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next, ok, _ := unstructured.NestedString(app.Object, "status", "nextRotationTime"); ok && next != "" {
		fmt.Fprintf(stdout, "\n* signs now. Next scheduled rotation: %s\n", next)
	} else {
		fmt.Fprintln(stdout, "\n* signs now.")
	}
	return nil
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
