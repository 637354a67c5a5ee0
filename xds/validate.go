package xds

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface {
	ValidateAll() error
}

// validate runs the message's own ValidateAll. what names the resource in
// the error, e.g. `listener "public_listener:10.0.0.1:21000"`.
func validate(what string, m proto.Message) error {
	v, ok := m.(validator)
	if !ok {
		return fmt.Errorf("%s: %T has no ValidateAll", what, m)
	}
	if err := v.ValidateAll(); err != nil {
		return fmt.Errorf("%s: invalid: %w", what, err)
	}
	return nil
}

// deterministic is used for every serialization that feeds a hash or an
// Any: map fields (RBAC policies, metadata) must marshal in a fixed order or
// identical inputs would hash differently and be pushed again.
var deterministic = proto.MarshalOptions{Deterministic: true}

// packer packs typed configs into Any messages, validating each one first:
// ValidateAll on a resource does not look inside its Any fields, so an
// invalid filter config would otherwise reach the proxy. The first error is
// kept and later calls are no-ops, which keeps the builders linear.
type packer struct {
	what string // the resource being built, for errors
	err  error
}

func (p *packer) pack(m proto.Message) *anypb.Any {
	if p.err != nil {
		return nil
	}
	if err := validate(fmt.Sprintf("%s: typed config %s", p.what, m.ProtoReflect().Descriptor().FullName()), m); err != nil {
		p.err = err
		return nil
	}
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, deterministic); err != nil {
		p.err = fmt.Errorf("%s: pack %T: %w", p.what, m, err)
		return nil
	}
	return a
}
