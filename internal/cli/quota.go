package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// QuotaEntry is one entity and its quotas, as `quota list` shows it. A
// default entity has UserDefault or ClientIDDefault set instead of a name.
type QuotaEntry struct {
	User            *string            `json:"user,omitempty"`
	UserDefault     bool               `json:"user_default,omitempty"`
	ClientID        *string            `json:"client_id,omitempty"`
	ClientIDDefault bool               `json:"client_id_default,omitempty"`
	Quotas          map[string]float64 `json:"quotas"`
}

// quotaEntityFlags select an entity: a user and/or a client id, each by
// name or as the default.
type quotaEntityFlags struct {
	user, clientID             string
	userDefault, clientDefault bool
}

func (f *quotaEntityFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.user, "user", "", "user principal name (everyone is ANONYMOUS until authentication lands)")
	cmd.Flags().BoolVar(&f.userDefault, "user-default", false, "the default user entity (<default>)")
	cmd.Flags().StringVar(&f.clientID, "client-id", "", "client id")
	cmd.Flags().BoolVar(&f.clientDefault, "client-id-default", false, "the default client-id entity (<default>)")
}

// entity returns the selected entity; an empty name counts when the flag
// was given (Kafka allows an empty client id).
func (f *quotaEntityFlags) entity(cmd *cobra.Command) (kadm.ClientQuotaEntity, error) {
	var e kadm.ClientQuotaEntity
	userSet, clientSet := cmd.Flags().Changed("user"), cmd.Flags().Changed("client-id")
	if userSet && f.userDefault || clientSet && f.clientDefault {
		return nil, errors.New("give a name or the default for each type, not both")
	}
	switch {
	case userSet:
		e = append(e, kadm.ClientQuotaEntityComponent{Type: "user", Name: &f.user})
	case f.userDefault:
		e = append(e, kadm.ClientQuotaEntityComponent{Type: "user"})
	}
	switch {
	case clientSet:
		e = append(e, kadm.ClientQuotaEntityComponent{Type: "client-id", Name: &f.clientID})
	case f.clientDefault:
		e = append(e, kadm.ClientQuotaEntityComponent{Type: "client-id"})
	}
	return e, nil
}

// NewQuotaCommand is `chronik quota set|list|delete`: Kafka client quotas
// over DescribeClientQuotas and AlterClientQuotas.
func NewQuotaCommand() *cobra.Command {
	var c common
	cmd := &cobra.Command{Use: "quota", Aliases: []string{"quotas"}, Short: "Set, list and delete client quotas (producer/consumer byte rates, request percentage)"}
	c.register(cmd)

	var setFlags quotaEntityFlags
	var validateOnly bool
	set := &cobra.Command{
		Use:   "set KEY=VALUE...",
		Short: "Set quotas of a user and/or client id (keys: producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate)",
		Example: `  chronik quota set --client-id etl producer_byte_rate=1048576
  chronik quota set --user-default consumer_byte_rate=10485760 request_percentage=50`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := setFlags.entity(cmd)
			if err != nil {
				return err
			}
			if len(e) == 0 {
				return errors.New("name an entity: --user, --user-default, --client-id or --client-id-default")
			}
			var ops []kadm.AlterClientQuotaOp
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				f, err := strconv.ParseFloat(v, 64)
				if !ok || err != nil {
					return fmt.Errorf("%q is not KEY=NUMBER", a)
				}
				ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Value: f})
			}
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				if err := alterQuotas(ctx, adm, e, ops, validateOnly); err != nil {
					return err
				}
				verb := "set"
				if validateOnly {
					verb = "valid (nothing changed):"
				}
				return printResult(cmd.OutOrStdout(), c.output, map[string]any{"entity": e.String(), "set": args, "validate_only": validateOnly},
					fmt.Sprintf("%s %s on %s", verb, strings.Join(args, " "), e))
			})
		},
	}
	setFlags.register(set)
	set.Flags().BoolVar(&validateOnly, "validate-only", false, "check with the broker, change nothing")

	var listFlags quotaEntityFlags
	var strict bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List quotas (all, or those of the entity the flags name; --strict: only entities of exactly those types)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := listFlags.entity(cmd)
			if err != nil {
				return err
			}
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				entries, err := describeQuotas(ctx, adm, e, strict)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if c.output == "json" {
					return writeJSON(w, entries)
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tCLIENT-ID\tQUOTAS")
				for _, q := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", quotaName(q.User, q.UserDefault), quotaName(q.ClientID, q.ClientIDDefault), formatQuotas(q.Quotas))
				}
				return tw.Flush()
			})
		},
	}
	listFlags.register(list)
	list.Flags().BoolVar(&strict, "strict", false, "only entities with exactly the given types")

	var delFlags quotaEntityFlags
	del := &cobra.Command{
		Use:   "delete [KEY...]",
		Short: "Remove quotas of an entity: the given keys, or all of them",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, keys []string) error {
			e, err := delFlags.entity(cmd)
			if err != nil {
				return err
			}
			if len(e) == 0 {
				return errors.New("name an entity: --user, --user-default, --client-id or --client-id-default")
			}
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				if len(keys) == 0 {
					entries, err := describeQuotas(ctx, adm, e, true)
					if err != nil {
						return err
					}
					if len(entries) == 0 {
						return fmt.Errorf("no quotas set on %s", e)
					}
					keys = slices.Sorted(maps.Keys(entries[0].Quotas))
				}
				var ops []kadm.AlterClientQuotaOp
				for _, k := range keys {
					ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Remove: true})
				}
				if err := alterQuotas(ctx, adm, e, ops, false); err != nil {
					return err
				}
				return printResult(cmd.OutOrStdout(), c.output, map[string]any{"entity": e.String(), "removed": keys},
					fmt.Sprintf("removed %s from %s", strings.Join(keys, " "), e))
			})
		},
	}
	delFlags.register(del)
	cmd.AddCommand(set, list, del)
	return cmd
}

func alterQuotas(ctx context.Context, adm *kadm.Client, e kadm.ClientQuotaEntity, ops []kadm.AlterClientQuotaOp, validateOnly bool) error {
	alter := adm.AlterClientQuotas
	if validateOnly {
		alter = adm.ValidateAlterClientQuotas
	}
	res, err := alter(ctx, []kadm.AlterClientQuotaEntry{{Entity: e, Ops: ops}})
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return fmt.Errorf("alter quotas of %s: %d results for one entity", e, len(res))
	}
	if err := res[0].Err; err != nil {
		if res[0].ErrMessage != "" {
			// The broker's message says what is wrong; the code's long
			// standard description would only bury it.
			short := res[0].ErrMessage
			if ke, ok := errors.AsType[*kerr.Error](err); ok {
				short += " (" + ke.Message + ")"
			}
			err = brokerMessage{msg: short, err: err}
		}
		return fmt.Errorf("quotas of %s: %w", e, err)
	}
	return nil
}

// brokerMessage is a Kafka error shown by the broker's message.
type brokerMessage struct {
	msg string
	err error
}

func (b brokerMessage) Error() string { return b.msg }
func (b brokerMessage) Unwrap() error { return b.err }

// describeQuotas lists the quotas matching e (exact names, defaults; all
// entities when e is empty).
func describeQuotas(ctx context.Context, adm *kadm.Client, e kadm.ClientQuotaEntity, strict bool) ([]QuotaEntry, error) {
	var comps []kadm.DescribeClientQuotaComponent
	for _, c := range e {
		if c.Name == nil {
			comps = append(comps, kadm.DescribeClientQuotaComponent{Type: c.Type, MatchType: 1})
		} else {
			comps = append(comps, kadm.DescribeClientQuotaComponent{Type: c.Type, MatchName: c.Name, MatchType: 0})
		}
	}
	qs, err := adm.DescribeClientQuotas(ctx, strict, comps)
	if err != nil {
		return nil, fmt.Errorf("describe quotas: %w", err)
	}
	out := []QuotaEntry{}
	for _, q := range qs {
		entry := QuotaEntry{Quotas: map[string]float64{}}
		for _, c := range q.Entity {
			switch c.Type {
			case "user":
				entry.User, entry.UserDefault = c.Name, c.Name == nil
			case "client-id":
				entry.ClientID, entry.ClientIDDefault = c.Name, c.Name == nil
			}
		}
		for _, v := range q.Values {
			entry.Quotas[v.Key] = v.Value
		}
		out = append(out, entry)
	}
	return out, nil
}

func quotaName(name *string, def bool) string {
	switch {
	case def:
		return "<default>"
	case name == nil:
		return "-"
	}
	return *name
}

func formatQuotas(q map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(q)) {
		parts = append(parts, k+"="+strconv.FormatFloat(q[k], 'f', -1, 64))
	}
	return strings.Join(parts, ",")
}
