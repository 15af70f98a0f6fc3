package printers

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Tables of a node's local ConfigMaps and Secrets (`ballast get`): kubectl's
// columns (NAME, DATA; TYPE for Secrets) and what only the node knows: the
// file that defines each and the pods that use it. Never a value.

// PrintConfigMaps prints ConfigMaps as a table; namespace "" shows every
// namespace (with a NAMESPACE column).
func PrintConfigMaps(w io.Writer, items []corev1.ConfigMap, namespace string) error {
	var rows []configRow
	for _, cm := range items {
		rows = append(rows, configRow{meta: cm.ObjectMeta, data: len(cm.Data) + len(cm.BinaryData)})
	}
	return printConfigs(w, rows, namespace, false)
}

// PrintSecrets prints Secrets as a table, as PrintConfigMaps.
func PrintSecrets(w io.Writer, items []corev1.Secret, namespace string) error {
	var rows []configRow
	for _, s := range items {
		rows = append(rows, configRow{meta: s.ObjectMeta, data: len(s.Data), typ: string(s.Type)})
	}
	return printConfigs(w, rows, namespace, true)
}

type configRow struct {
	meta metav1.ObjectMeta
	data int
	typ  string
}

func printConfigs(w io.Writer, all []configRow, namespace string, secrets bool) error {
	var rows []configRow
	for _, r := range all {
		if namespace == "" || r.meta.Namespace == namespace {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		what := "ConfigMaps"
		if secrets {
			what = "Secrets"
		}
		_, err := fmt.Fprintf(w, "No %s on this node (a manifest file may define them beside its pods).\n", what)
		return err
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].meta.Namespace != rows[j].meta.Namespace {
			return rows[i].meta.Namespace < rows[j].meta.Namespace
		}
		return rows[i].meta.Name < rows[j].meta.Name
	})
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	var head []string
	if namespace == "" {
		head = append(head, "NAMESPACE")
	}
	head = append(head, "NAME")
	if secrets {
		head = append(head, "TYPE")
	}
	head = append(head, "DATA", "FILE", "USED BY")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	var notes []string
	for _, r := range rows {
		var cols []string
		if namespace == "" {
			cols = append(cols, r.meta.Namespace)
		}
		cols = append(cols, r.meta.Name)
		file := r.meta.Annotations[wellknown.AnnotationManifest]
		if missing := r.meta.Annotations[wellknown.AnnotationConfigMissing]; missing != "" {
			file = "<missing>"
			notes = append(notes, fmt.Sprintf("missing: %s/%s is %s", r.meta.Namespace, r.meta.Name, missing))
		}
		if secrets {
			cols = append(cols, orNone(r.typ))
		}
		cols = append(cols, fmt.Sprint(r.data), orNone(file), orNone(r.meta.Annotations[wellknown.AnnotationUsedBy]))
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
		if wn := r.meta.Annotations[wellknown.AnnotationFileWarning]; wn != "" {
			notes = append(notes, "warning: "+wn)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sort.Strings(notes)
	for i, n := range notes {
		if i > 0 && notes[i-1] == n {
			continue
		}
		if _, err := fmt.Fprintln(w, n); err != nil {
			return err
		}
	}
	return nil
}
