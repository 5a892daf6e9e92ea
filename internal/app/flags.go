package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrUsage marks a mistake on the command line (exit code 2): a flag or
// an environment variable the farm cannot take, or values that contradict
// each other. The error's text says which, and what to give instead.
var ErrUsage = errors.New("usage")

// NewFlagSet makes a flag set for a subcommand that reports errors as
// usage errors instead of exiting.
func NewFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("renderfarm "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// aliasValue is the value of a flag that is another name of the flag
// target (AliasFlag).
type aliasValue struct{ target *flag.Flag }

func (a aliasValue) String() string {
	if a.target == nil {
		return ""
	}
	return a.target.Value.String()
}
func (a aliasValue) Set(s string) error { return a.target.Value.Set(s) }

// AliasFlag adds the flag name to fs as another name of its flag target,
// registered already. On the command line either sets it; from the
// environment only the target's variable does (RENDERFARM_<TARGET>), so
// that a variable named after an alias for one command (RENDERFARM_NAME,
// which `keys create --name` takes) cannot set another command's flag,
// nor override what its command line gave under the other name.
func AliasFlag(fs *flag.FlagSet, name, target string) {
	t := fs.Lookup(target)
	if t == nil {
		panic("app: alias --" + name + " of an unregistered flag --" + target)
	}
	fs.Var(aliasValue{t}, name, "the same as --"+target+": "+t.Usage)
}

// ParseFlags parses args, taking each flag not given on the command line
// from RENDERFARM_<NAME> in the environment (dashes become underscores), so
// that a service unit or container can configure everything from its
// environment. An alias (AliasFlag) given on the command line counts as
// its flag given; an alias has no variable of its own.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if a, ok := f.Value.(aliasValue); ok {
			given[a.target.Name] = true
		}
	})
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if _, alias := f.Value.(aliasValue); alias || given[f.Name] || err != nil {
			return
		}
		env := "RENDERFARM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if setErr := fs.Set(f.Name, v); setErr != nil {
				err = fmt.Errorf("%w: %s=%q: %v", ErrUsage, env, v, setErr)
			}
		}
	})
	return err
}

// byteSize is a flag value in bytes that accepts suffixes: 5GiB, 512MiB,
// 1000. It sets the int64 it points to.
type byteSize struct{ n *int64 }

func (b byteSize) String() string {
	if b.n == nil {
		return "0"
	}
	return fmt.Sprint(*b.n)
}

func (b byteSize) Set(s string) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	text := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(text, u.suffix) {
			text, mult = strings.TrimSpace(strings.TrimSuffix(text, u.suffix)), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(text, &n); err != nil || n <= 0 {
		return fmt.Errorf("%q is not a size; use a number of bytes or a size such as 5GiB", s)
	}
	*b.n = n * mult
	return nil
}

// blenderList is a flag given once for each value: --blender A --blender
// B. From the environment (RENDERFARM_BLENDER) it takes one value.
type blenderList struct{ list *[]string }

func (b blenderList) String() string {
	if b.list == nil {
		return ""
	}
	return strings.Join(*b.list, ", ")
}

func (b blenderList) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("give the path of a Blender executable or of a root file system with usr/bin/blender")
	}
	*b.list = append(*b.list, s)
	return nil
}

// ByteSizeValue is a flag.Value for a size in bytes that takes 0 and the
// suffixes --max-upload-bytes takes (5GiB, 512MiB, 1000).
func ByteSizeValue(p *int64) flag.Value { return zeroOrByteSize{byteSize{p}} }

type zeroOrByteSize struct{ byteSize }

func (z zeroOrByteSize) Set(s string) error {
	if strings.TrimSpace(s) == "0" {
		*z.n = 0
		return nil
	}
	return z.byteSize.Set(s)
}
