package fidius

/*
#include "fidius.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Description is what Plugin.Describe says about a plugin: the JSON document
// of fidius_plugin_describe, decoded. null in the document is the zero
// value here ("", nil, 0) except where noted; JSON keeps everything,
// including fields added to the document later.
type Description struct {
	Name             string
	Interface        string
	InterfaceHash    uint64 // from the document's "0x..." string
	InterfaceVersion uint32
	Runtime          string // "native", "wasm" or "python"
	ABIVersion       uint32 // 500 or 400 for native plugins, 0 for WASM
	BufferStrategy   string // "plugin-allocated", "arena"; "" for WASM
	// CapabilityBits: native plugins, bit N set = optional method N present; nil for WASM.
	CapabilityBits *uint64
	// Capabilities: packages, the capabilities granted; nil for native plugins.
	Capabilities []string
	// TypesFrom is where the types come from: "component", a schema's
	// origin (e.g. the path of "<library>.wit"), or "" when unknown (a
	// native plugin without an interface schema knows its method count,
	// metadata and which methods it implements, but not names or types).
	TypesFrom string
	Metadata  map[string]string // interface-level metadata
	Methods   []MethodDescription
	Types     []TypeDescription
	// JSON is the whole document as libfidius wrote it.
	JSON []byte
}

// MethodDescription describes one method. Types are written as WIT writes
// them ("list<point>", "option<u32>", "tuple<string, u32>").
type MethodDescription struct {
	Index  uint32
	Name   string  // kebab-case; "" when unknown
	Params []Param // nil when unknown; empty for none
	// Result is the declared WIT result ("result<s64, plugin-error>"),
	// Returns what a successful call returns ("s64"); "" for none, or when
	// unknown (Description.TypesFrom == "").
	Result  string
	Returns string
	// Fallible: errors are StatusPluginError. nil where unknown, as for Raw,
	// Streaming and Optional.
	Fallible    *bool
	Raw         *bool
	Streaming   *bool
	Optional    *bool
	Implemented bool
	Metadata    map[string]string
	// StreamItem is a streaming method's item type ("u64", "point"); "" for
	// a method that does not stream, or where unknown.
	StreamItem string
}

// Param is a method parameter or a record field.
type Param struct {
	Name string
	Type string
}

// TypeDescription is a user type of the interface.
type TypeDescription struct {
	Name   string
	Kind   string     // "record", "variant", "enum", "flags"
	Fields []Param    // record
	Cases  []TypeCase // variant (with payload types) and enum (names only)
	Flags  []string   // flags
}

// TypeCase is a case of a variant or an enum; Type is the variant case's
// payload type, "" for none (and for enum cases).
type TypeCase struct {
	Name string
	Type string
}

// UnmarshalJSON takes a variant case {"name": ..., "type": ...} or an enum case "name".
func (c *TypeCase) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*c = TypeCase{}
		return json.Unmarshal(b, &c.Name)
	}
	var v struct {
		Name string  `json:"name"`
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = TypeCase{Name: v.Name}
	if v.Type != nil {
		c.Type = *v.Type
	}
	return nil
}

// The document's own shape; null strings decode as "".
type describeDoc struct {
	Name             string            `json:"name"`
	Interface        string            `json:"interface"`
	InterfaceHash    string            `json:"interface_hash"`
	InterfaceVersion uint32            `json:"interface_version"`
	Runtime          string            `json:"runtime"`
	ABIVersion       *uint32           `json:"abi_version"`
	BufferStrategy   *string           `json:"buffer_strategy"`
	CapabilityBits   *uint64           `json:"capability_bits"`
	Capabilities     []string          `json:"capabilities"`
	TypesFrom        *string           `json:"types_from"`
	Metadata         map[string]string `json:"metadata"`
	Methods          []struct {
		Index  uint32  `json:"index"`
		Name   *string `json:"name"`
		Params []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"params"`
		Result      *string           `json:"result"`
		Returns     *string           `json:"returns"`
		Fallible    *bool             `json:"fallible"`
		Raw         *bool             `json:"raw"`
		Streaming   *bool             `json:"streaming"`
		StreamItem  *string           `json:"stream_item"`
		Optional    *bool             `json:"optional"`
		Implemented bool              `json:"implemented"`
		Metadata    map[string]string `json:"metadata"`
	} `json:"methods"`
	Types []struct {
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		Fields []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"fields"`
		Cases []TypeCase `json:"cases"`
		Flags []string   `json:"flags"`
	} `json:"types"`
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func parseDescription(doc []byte) (*Description, error) {
	var d describeDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("fidius: describe: %w", err)
	}
	out := &Description{
		Name:             d.Name,
		Interface:        d.Interface,
		InterfaceVersion: d.InterfaceVersion,
		Runtime:          d.Runtime,
		BufferStrategy:   str(d.BufferStrategy),
		CapabilityBits:   d.CapabilityBits,
		Capabilities:     d.Capabilities,
		TypesFrom:        str(d.TypesFrom),
		Metadata:         d.Metadata,
		JSON:             doc,
	}
	if d.InterfaceHash != "" {
		h, err := strconv.ParseUint(strings.TrimPrefix(d.InterfaceHash, "0x"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("fidius: describe: interface_hash %q: %w", d.InterfaceHash, err)
		}
		out.InterfaceHash = h
	}
	if d.ABIVersion != nil {
		out.ABIVersion = *d.ABIVersion
	}
	for _, m := range d.Methods {
		md := MethodDescription{
			Index: m.Index, Name: str(m.Name), Result: str(m.Result), Returns: str(m.Returns),
			Fallible: m.Fallible, Raw: m.Raw, Streaming: m.Streaming, Optional: m.Optional,
			Implemented: m.Implemented, Metadata: m.Metadata, StreamItem: str(m.StreamItem),
		}
		if m.Params != nil {
			md.Params = make([]Param, 0, len(m.Params))
			for _, p := range m.Params {
				md.Params = append(md.Params, Param(p))
			}
		}
		out.Methods = append(out.Methods, md)
	}
	for _, t := range d.Types {
		td := TypeDescription{Name: t.Name, Kind: t.Kind, Cases: t.Cases, Flags: t.Flags}
		for _, f := range t.Fields {
			td.Fields = append(td.Fields, Param(f))
		}
		out.Types = append(out.Types, td)
	}
	return out, nil
}

// DescribeJSON is fidius_plugin_describe's JSON document about the plugin
// (see Describe for its decoded form).
func (p *Plugin) DescribeJSON() ([]byte, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil || p.closed() {
		return nil, ErrClosed
	}
	var out C.fidius_bytes
	var cerr *C.fidius_error
	if err := takeError(C.fidius_plugin_describe(p.ptr, &out, &cerr), cerr); err != nil {
		return nil, err
	}
	return takeBytes(&out), nil
}

// Describe says what the plugin is: name, interface, runtime, and each
// method's name, parameters and result, and the interface's user types,
// where known (WASM plugins, native plugins with an interface schema).
func (p *Plugin) Describe() (*Description, error) {
	doc, err := p.DescribeJSON()
	if err != nil {
		return nil, err
	}
	return parseDescription(doc)
}

// Type finds a user type by name ("order"); nil when there is none.
func (d *Description) Type(name string) *TypeDescription {
	for i := range d.Types {
		if d.Types[i].Name == name {
			return &d.Types[i]
		}
	}
	return nil
}
