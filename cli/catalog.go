package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/warren-mesh/warren/api"
)

const catalogUsage = `usage: warren catalog <services|nodes|service NAME> [-filter EXPR] [-json] [-http-addr ADDR]`

func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, catalogUsage)
		return ExitUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("catalog "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	tags := fs.Bool("tags", false, "services: show tags")
	filter := fs.String("filter", "", `a filter expression, as the API's ?filter (e.g. 'ServiceMeta.env == prod')`)
	// Flags may follow the service name: warren catalog service web -json.
	var name string
	if sub == "service" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if sub == "service" && name == "" {
		name = fs.Arg(0)
	}
	c := addr.client()
	var q url.Values
	if *filter != "" {
		q = url.Values{"filter": {*filter}}
	}
	var err error
	switch sub {
	case "services":
		err = catalogServices(ctx, c, stdout, q, *asJSON, *tags)
	case "nodes":
		err = catalogNodes(ctx, c, stdout, q, *asJSON)
	case "service":
		if name == "" {
			fmt.Fprintln(stderr, "warren catalog service: missing service NAME")
			return ExitUsage
		}
		err = catalogService(ctx, c, stdout, name, q, *asJSON)
	default:
		fmt.Fprintf(stderr, "warren catalog: unknown subcommand %q\n%s\n", sub, catalogUsage)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "warren catalog %s: %v\n", sub, err)
		return ExitError
	}
	return ExitOK
}

func catalogServices(ctx context.Context, c *httpClient, w io.Writer, q url.Values, asJSON, tags bool) error {
	var out map[string][]string
	if err := c.do(ctx, "GET", "/v1/catalog/services", q, nil, &out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, out)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, n := range names {
		if tags {
			fmt.Fprintf(tw, "%s\t%s\n", n, strings.Join(out[n], ","))
		} else {
			fmt.Fprintln(tw, n)
		}
	}
	return tw.Flush()
}

func catalogNodes(ctx context.Context, c *httpClient, w io.Writer, q url.Values, asJSON bool) error {
	var out []*api.Node
	if err := c.do(ctx, "GET", "/v1/catalog/nodes", q, nil, &out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Node\tID\tAddress\tDC")
	for _, n := range out {
		id := n.ID
		if len(id) > 8 {
			id = id[:8]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Node, id, n.Address, n.Datacenter)
	}
	return tw.Flush()
}

func catalogService(ctx context.Context, c *httpClient, w io.Writer, name string, q url.Values, asJSON bool) error {
	var out []*api.CatalogService
	if err := c.do(ctx, "GET", "/v1/catalog/service/"+url.PathEscape(name), q, nil, &out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, out)
	}
	if len(out) == 0 {
		return fmt.Errorf("no instances of service %q", name)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Node\tServiceID\tAddress\tPort\tTags")
	for _, s := range out {
		addr := s.ServiceAddress
		if addr == "" {
			addr = s.Address
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Node, s.ServiceID, addr, s.ServicePort, strings.Join(s.ServiceTags, ","))
	}
	return tw.Flush()
}
