package redisstore

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"optinproxy/optin"
)

// A target's keys carry the hash tag {o:TARGET} (a subject id has no
// ':'), so that one script writes its records, their status indexes and
// its cursor together, also on Cluster.
func (k keys) target(target, kind string) string {
	return k.prefix + "{o:" + target + "}:" + kind
}

// records is the hash of a target's delivery records: event id ->
// encodeDelivery.
func (k keys) records(target string) string { return k.target(target, "od") }

// statusIndex is the sorted set of a target's records of one status:
// all scored 0, each member its Created (8 bytes, big-endian Unix ns)
// and event id, so ZRANGE BYLEX lists them oldest first.
func (k keys) statusIndex(target string, st optin.DeliveryStatus) string {
	return k.target(target, "o"+string(statusChar(st)))
}

func (k keys) cursor(target string) string { return k.target(target, "oc") }

// saved is when a target last saved records or a cursor, Unix ms by the
// store's clock in decimal: its sign of life for PruneOutbox.
func (k keys) saved(target string) string { return k.target(target, "ol") }

// targets is the set of the targets that ever saved records or a
// cursor, for Deliveries of all targets and for PruneOutbox.
func (k keys) targets() string { return k.prefix + "outbox:targets" }

// statusChar is a status's first byte in a record and the last of its
// index's key; the script moves records between indexes by it.
func statusChar(st optin.DeliveryStatus) byte {
	switch st {
	case optin.DeliveryDead:
		return 'x'
	case optin.DeliveryRetired:
		return 'r'
	}
	return 'p'
}

func statusOf(c byte) (optin.DeliveryStatus, bool) {
	switch c {
	case 'p':
		return optin.DeliveryPending, true
	case 'x':
		return optin.DeliveryDead, true
	case 'r':
		return optin.DeliveryRetired, true
	}
	return "", false
}

// createdKey is a Created in an index member: 8-byte big-endian Unix
// nanoseconds, 0 for the zero time and times before 1970.
func createdKey(t time.Time) string {
	return string(binary.BigEndian.AppendUint64(nil, uint64(max(unixNano(t), 0))))
}

// deliveryFormat follows the status and Created in a record.
const deliveryFormat = 1

// Tags of a position in a record.
const (
	posStream = 1 // a stream id: its two numbers as uvarints
	posText   = 2
)

// encodeDelivery writes a record compactly (the target and event id are
// its key and field): its status byte and Created (8 bytes), which
// saveScript reads; the format byte; the event type (a code); the
// position; the subject id (16 raw bytes); attempts; NextAt, LastAt and
// DoneAt, each 0 for none or 1 and its difference from Created in ns
// (zigzag varint); the last error.
func encodeDelivery(d *optin.OutboxDelivery) string {
	b := make([]byte, 0, 64+len(d.LastError))
	b = append(b, statusChar(d.Status))
	b = append(b, createdKey(d.Created)...)
	b = append(b, deliveryFormat)
	b = appendCoded(b, typeCodes, string(d.EventType))
	if ms, seq, ok := splitStreamID(d.Pos); ok {
		b = binary.AppendUvarint(binary.AppendUvarint(append(b, posStream), ms), seq)
	} else {
		b = appendString(append(b, posText), d.Pos)
	}
	b = appendID(b, d.SubjectID)
	b = binary.AppendUvarint(b, uint64(max(d.Attempts, 0)))
	created := max(unixNano(d.Created), 0) // as createdKey keeps it
	for _, t := range []time.Time{d.NextAt, d.LastAt, d.DoneAt} {
		if t.IsZero() {
			b = append(b, tagNone)
			continue
		}
		b = binary.AppendVarint(append(b, 1), t.UnixNano()-created)
	}
	return string(appendString(b, d.LastError))
}

// decodeDelivery reads encodeDelivery's form back.
func decodeDelivery(target, eventID, v string) (optin.OutboxDelivery, error) {
	d := optin.OutboxDelivery{Target: target, EventID: eventID}
	bad := func(what string) (optin.OutboxDelivery, error) {
		return optin.OutboxDelivery{}, fmt.Errorf("redisstore: %w: delivery %s of %s: %s", optin.ErrCorrupt, eventID, target, what)
	}
	if len(v) < 10 || v[9] != deliveryFormat {
		return bad("unknown format")
	}
	st, ok := statusOf(v[0])
	if !ok {
		return bad("unknown status")
	}
	d.Status = st
	created := int64(binary.BigEndian.Uint64([]byte(v[1:9])))
	d.Created = fromUnixNano(created)
	dec := decoder{s: v[10:]}
	d.EventType = optin.EventType(dec.coded(typeCodes))
	switch dec.byte() {
	case posStream:
		ms := dec.uvarint()
		d.Pos = strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(dec.uvarint(), 10)
	case posText:
		d.Pos = dec.string()
	default:
		dec.fail("position tag")
	}
	d.SubjectID = dec.id()
	d.Attempts = int(dec.uvarint())
	for _, t := range []*time.Time{&d.NextAt, &d.LastAt, &d.DoneAt} {
		switch dec.byte() {
		case tagNone:
		case 1:
			*t = time.Unix(0, created+dec.varint()).UTC()
		default:
			dec.fail("time tag")
		}
	}
	d.LastError = dec.string()
	if err := dec.done(); err != nil {
		return bad(err.Error())
	}
	return d, nil
}

// splitStreamID reads a stream entry id's two numbers.
func splitStreamID(id string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || strconv.FormatUint(ms, 10) != a || strconv.FormatUint(seq, 10) != b {
		return 0, 0, false
	}
	return ms, seq, true
}

// streamBefore reports whether stream id a comes before b.
func streamBefore(a, b string) bool {
	am, as, _ := splitStreamID(a)
	bm, bs, _ := splitStreamID(b)
	return am < bm || am == bm && as < bs
}

// A Deliveries cursor is base64 of the last record's Created (8 bytes),
// target, 0x00 and event id: records are listed by those, in that order.
func deliveryCursor(d *optin.OutboxDelivery) string {
	return base64.RawURLEncoding.EncodeToString([]byte(createdKey(d.Created) + d.Target + "\x00" + d.EventID))
}

func decodeDeliveryCursor(c string) (created, target, eventID string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && len(raw) > 8 {
		if t, id, ok := strings.Cut(string(raw[8:]), "\x00"); ok {
			return string(raw[:8]), t, id, nil
		}
	}
	return "", "", "", fmt.Errorf("redisstore: %w: delivery cursor %q", optin.ErrBadInput, c)
}
