package filestore

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"optinproxy/optin"
)

// Record versions: the first byte of every encoded record.
const (
	recordV1 = 1 // schema 1: the address and the subject key in the clear
	recordV2 = 2
	recordV3 = 3 // version 2 and the erasure fields (KeyFrom, ErasureAt)
)

// encode writes the record as: the version byte; the sealed address, the
// wrapped key and the head, each a uvarint length and its bytes; the
// event count; the receipt head, count, pruned count and pruned head;
// the number of consents, then per consent its purpose and its
// optin.EncodeConsent form (length-prefixed) and the sequence of its
// recording event (uvarint, 0 for none); the number of suppressions,
// then per suppression its reason (length-prefixed) and its time in Unix
// nanoseconds (varint). Purposes and reasons are written in name order.
// Version 3, written only for a record that has them (a subject that
// came back after an erasure, or one with a scheduled erasure), adds
// KeyFrom (uvarint) and ErasureAt (varint Unix nanoseconds, 0 for none)
// after the pruned head.
func (r *record) encode() []byte {
	b := make([]byte, 0, 256+64*len(r.Consents))
	v3 := r.KeyFrom != 0 || r.ErasureAt != 0
	if v3 {
		b = append(b, recordV3)
	} else {
		b = append(b, recordV2)
	}
	b = appendString(b, string(r.Sealed))
	b = appendString(b, string(r.Wrapped))
	b = appendString(b, r.Head)
	b = binary.AppendUvarint(b, r.Events)
	b = appendString(b, r.ReceiptHead)
	b = binary.AppendUvarint(b, r.Receipts)
	b = binary.AppendUvarint(b, r.Pruned)
	b = appendString(b, r.PrunedHead)
	if v3 {
		b = binary.AppendUvarint(b, r.KeyFrom)
		b = binary.AppendVarint(b, r.ErasureAt)
	}
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

// clone is bytes, copied, nil when empty.
func (d *decoder) clone() []byte {
	if v := d.bytes(); len(v) > 0 {
		return slices.Clone(v)
	}
	return nil
}

// header reads the fields before the consents. A version 1 record (the
// migration's input) has its address in Sealed and its raw key in
// Wrapped, and no receipt chain.
func (d *decoder) header(r *record) (version byte, err error) {
	if len(d.b) == 0 || d.b[0] != recordV1 && d.b[0] != recordV2 && d.b[0] != recordV3 {
		return 0, fmt.Errorf("record version %v", d.b[:min(1, len(d.b))])
	}
	version = d.b[0]
	d.b = d.b[1:]
	r.Sealed = d.clone()
	r.Wrapped = d.clone()
	r.Head = d.string()
	r.Events = d.uvarint()
	if version >= recordV2 {
		r.ReceiptHead = d.string()
		r.Receipts = d.uvarint()
		r.Pruned = d.uvarint()
		r.PrunedHead = d.string()
	}
	if version == recordV3 {
		r.KeyFrom = d.uvarint()
		r.ErasureAt = d.varint()
	}
	return version, nil
}

func decodeRecord(sid string, v []byte) (*record, error) {
	r, version, err := decodeAnyRecord(sid, v)
	if err == nil && version == recordV1 {
		err = fmt.Errorf("%w: subject %s: a record of schema 1 in a store of schema 2", optin.ErrCorrupt, sid)
	}
	return r, err
}

// decodeAnyRecord reads a record of either version.
func decodeAnyRecord(sid string, v []byte) (*record, byte, error) {
	d := &decoder{b: v}
	r := &record{}
	version, err := d.header(r)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: subject %s: %v", optin.ErrCorrupt, sid, err)
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
		return nil, 0, fmt.Errorf("%w: subject %s: bad record", optin.ErrCorrupt, sid)
	}
	return r, version, nil
}

// standing reads, from an encoded record, only what Lookup needs: the
// encoded consent for purpose ("" for none) and the suppression reasons
// in name order.
func standing(sid string, v []byte, purpose string) (string, []optin.SuppressionReason, error) {
	d := &decoder{b: v}
	var head record
	if _, err := d.header(&head); err != nil {
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
