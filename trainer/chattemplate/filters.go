package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ardanlabs/jinja"
)

// ourFilters are the built-in filters we replace with Python-exact ones (Compile renames `| name` to the variable;
// Render binds it). The engine's print 21.0 as 21 and None as "" (string, join) and round halves up to an int
// (round: 2.5 gives 3; Python's 2.0).
var ourFilters = map[string]func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error){
	"tojson": filterToJSON,
	"string": filterPrint,
	"join":   filterJoin,
	"round":  filterRound,
}

// ourFilterVar is the variable a replaced filter is bound to.
func ourFilterVar(name string) string { return "preftune_" + name }

// filterJoin is Jinja2's join(value, d="", attribute=None): the items printed as Python's str() (or their attribute)
// and joined by d.
func filterJoin(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.NewString(""), nil
	}
	sep := ""
	if len(args) > 1 {
		sep = pyStr(args[1])
	}
	if v, ok := kwargs["d"]; ok {
		sep = pyStr(v)
	}
	attr := ""
	if len(args) > 2 {
		attr = pyStr(args[2])
	}
	if v, ok := kwargs["attribute"]; ok {
		attr = pyStr(v)
	}
	var items []jinja.Value
	switch v := args[0]; {
	case v.IsList():
		items = v.AsList().Items
	case v.IsDict():
		for _, k := range v.AsDict().Keys {
			items = append(items, jinja.NewString(k))
		}
	case v.IsString():
		for _, r := range v.AsString() {
			items = append(items, jinja.NewString(string(r)))
		}
	case v.IsUndefined() || v.IsNone():
		return jinja.Undefined(), fmt.Errorf("join: %s is not iterable", pyTypeName(v))
	default:
		return jinja.Undefined(), fmt.Errorf("join: %s is not iterable", v.String())
	}
	parts := make([]string, len(items))
	for i, it := range items {
		if attr != "" {
			it = attribute(it, attr)
		}
		parts[i] = pyStr(it)
	}
	return jinja.NewString(strings.Join(parts, sep)), nil
}

// attribute returns v's dotted attribute (dict keys, list indexes), undefined when it is missing.
func attribute(v jinja.Value, path string) jinja.Value {
	for _, part := range strings.Split(path, ".") {
		switch {
		case v.IsDict():
			x, ok := v.AsDict().Get(part)
			if !ok {
				return jinja.Undefined()
			}
			v = x
		case v.IsList():
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= v.AsList().Len() {
				return jinja.Undefined()
			}
			v = v.AsList().Items[i]
		default:
			return jinja.Undefined()
		}
	}
	return v
}

// filterRound is Jinja2's round(value, precision=0, method='common'): 'common' is Python's round() (correctly
// rounded, ties to even on exact halves: 2.5 gives 2.0, 2.675 gives 2.67), 'ceil' and 'floor' round away or
// towards minus infinity. The result is a float, as Jinja2's is for a float (an int stays an int under 'common').
func filterRound(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("round: no value")
	}
	prec := int64(0)
	method := "common"
	if len(args) > 1 {
		if !args[1].IsInt() {
			return jinja.Undefined(), fmt.Errorf("round: precision must be an integer, got %s", args[1].String())
		}
		prec = args[1].AsInt()
	}
	if len(args) > 2 {
		method = pyStr(args[2])
	}
	if v, ok := kwargs["precision"]; ok {
		if !v.IsInt() {
			return jinja.Undefined(), fmt.Errorf("round: precision must be an integer, got %s", v.String())
		}
		prec = v.AsInt()
	}
	if v, ok := kwargs["method"]; ok {
		method = pyStr(v)
	}
	v := args[0]
	var f float64
	switch {
	case v.IsInt():
		if method == "common" {
			return v, nil
		}
		f = float64(v.AsInt())
	case v.IsFloat():
		f = v.AsFloat()
	default:
		return jinja.Undefined(), fmt.Errorf("round: a number is required, not %s", pyTypeName(v))
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return jinja.NewFloat(f), nil
	}
	scale := math.Pow(10, float64(prec))
	switch method {
	case "common":
		if prec >= 0 {
			r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'f', int(prec), 64), 64)
			if err != nil {
				return jinja.Undefined(), err
			}
			return jinja.NewFloat(r), nil
		}
		return jinja.NewFloat(math.RoundToEven(f*scale) / scale), nil
	case "ceil":
		return jinja.NewFloat(math.Ceil(f*scale) / scale), nil
	case "floor":
		return jinja.NewFloat(math.Floor(f*scale) / scale), nil
	}
	return jinja.Undefined(), fmt.Errorf("round: method must be common, ceil or floor, got %q", method)
}
