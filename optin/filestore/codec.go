package filestore

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"optinproxy/optin"
)

// recordVersion is the first byte of every encoded record.
const recordVersion = 1

// encode writes the record as: the version byte; the address, the key and
// the head, each a uvarint length and its bytes; the event count as a
// uvarint; the number of consents, then per consent its purpose and its
// optin.EncodeConsent form (length-prefixed) and the sequence of its
// recording event (uvarint, 0 for none); the number of suppressions, then
// per suppression its reason (length-prefixed) and its time in Unix
// nanoseconds (varint). Purposes and reasons are written in name order.
func (r *record) encode() []byte {
	b := make([]byte, 0, 128+len(r.Address)+64*len(r.Consents))
	b = append(b, recordVersion)
	b = appendString(b, r.Address)
	b = appendString(b, string(r.Key))
	b = appendString(b, r.Head)
	b = binary.AppendUvarint(b, r.Events)
	b = binary.AppendUvarint(b, uint64(len(r.Consents)))
	for _, p := range slices.Sorted(maps.Keys(r.Consents)) {
		b = appendString(b, p)
		b = appendString(b, r.Consents[p])
		b = binary.AppendUvarint(b, r.Recorded[p])
	}
	b = binary.AppendUvarint(b, uint64(len(r.Suppressions)))
	for _, reason := range slices.Sorted(maps.Keys(r.Suppressions)) {
		b = appendString(b, string(reason))
		b = binary.AppendVarint(b, r.Suppressions[reason])
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads encode's form; the first failure sticks.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed field, sharing d's memory.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad, d.b = true, nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// header reads the fields before the consents.
func (d *decoder) header(r *record) error {
	if len(d.b) == 0 || d.b[0] != recordVersion {
		return fmt.Errorf("record version %v", d.b[:min(1, len(d.b))])
	}
	d.b = d.b[1:]
	r.Address = d.string()
	if key := d.bytes(); len(key) > 0 {
		r.Key = slices.Clone(key)
	}
	r.Head = d.string()
	r.Events = d.uvarint()
	return nil
}

func decodeRecord(sid string, v []byte) (*record, error) {
	d := &decoder{b: v}
	r := &record{}
	if err := d.header(r); err != nil {
		return nil, fmt.Errorf("%w: subject %s: %v", optin.ErrCorrupt, sid, err)
	}
	n := d.uvarint()
	r.Consents, r.Recorded = make(map[string]string, min(n, 64)), make(map[string]uint64, min(n, 64))
	for i := uint64(0); i < n && !d.bad; i++ {
		p := d.string()
		r.Consents[p] = d.string()
		if seq := d.uvarint(); seq != 0 {
			r.Recorded[p] = seq
		}
	}
	n = d.uvarint()
	r.Suppressions = make(map[optin.SuppressionReason]int64, min(n, 8))
	for i := uint64(0); i < n && !d.bad; i++ {
		reason := optin.SuppressionReason(d.string())
		r.Suppressions[reason] = d.varint()
	}
	if d.bad || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: subject %s: bad record", optin.ErrCorrupt, sid)
	}
	return r, nil
}

// standing reads, from an encoded record, only what Lookup needs: the
// encoded consent for purpose ("" for none) and the suppression reasons
// in name order.
func standing(sid string, v []byte, purpose string) (string, []optin.SuppressionReason, error) {
	d := &decoder{b: v}
	var head record
	if err := d.header(&head); err != nil {
		return "", nil, fmt.Errorf("%w: subject %s: %v", optin.ErrCorrupt, sid, err)
	}
	var enc string
	for n := d.uvarint(); n > 0 && !d.bad; n-- {
		p, c := d.bytes(), d.bytes()
		d.uvarint()
		if string(p) == purpose {
			enc = string(c)
		}
	}
	var reasons []optin.SuppressionReason
	for n := d.uvarint(); n > 0 && !d.bad; n-- {
		reasons = append(reasons, optin.SuppressionReason(d.string()))
		d.varint()
	}
	if d.bad || len(d.b) != 0 {
		return "", nil, fmt.Errorf("%w: subject %s: bad record", optin.ErrCorrupt, sid)
	}
	return enc, reasons, nil
}
