package fakegoogle

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// seedNewest is the date of the newest seeded message. A fixed date keeps
// mailboxes the same from run to run.
var seedNewest = time.Date(2025, time.June, 2, 9, 30, 0, 0, time.UTC)

type contact struct{ name, addr string }

func (c contact) String() string { return fmt.Sprintf("%s <%s>", c.name, c.addr) }

var seedContacts = []contact{
	{"Alice Martin", "alice.martin@example.org"},
	{"Bob Nguyen", "bob@nguyen.example"},
	{"Carla Rossi", "carla.rossi@example.net"},
	{"Dmitri Volkov", "dmitri@volkov.example"},
	{"Emeka Okafor", "emeka.okafor@example.com"},
	{"Fatima Zahra", "fatima@zahra.example"},
	{"Grace Hopper", "grace@navy.example"},
	{"Hiro Tanaka", "hiro.tanaka@example.jp"},
}

var seedSenders = map[string][]contact{
	"CATEGORY_UPDATES": {
		{"GitHub", "notifications@github.example"},
		{"Acme Bank", "alerts@acmebank.example"},
		{"Calendar", "calendar-notification@example.com"},
		{"Parcel Tracker", "tracking@parcels.example"},
	},
	"CATEGORY_PROMOTIONS": {
		{"Shoply", "deals@shoply.example"},
		{"Sky Airlines", "offers@skyair.example"},
		{"Bookworm", "newsletter@bookworm.example"},
	},
	"CATEGORY_SOCIAL": {
		{"Friendly", "no-reply@friendly.example"},
		{"PhotoShare", "notify@photoshare.example"},
	},
	"CATEGORY_FORUMS": {
		{"golang-nuts", "golang-nuts@groups.example"},
		{"Gardening Club", "club@gardening.example"},
	},
}

var seedSubjects = map[string][]string{
	"CATEGORY_PERSONAL": {
		"Lunch on %s?", "Photos from the trip", "Re: weekend plans", "Quick question about %s",
		"Happy birthday!", "Notes from our call", "Can you review this?", "Dinner at %s",
	},
	"CATEGORY_UPDATES": {
		"[repo] Pull request #%d merged", "Your statement is ready", "Reminder: meeting at %s",
		"Your parcel %d is on its way", "Security alert for your account", "Invoice %d",
	},
	"CATEGORY_PROMOTIONS": {
		"%d%% off everything this weekend", "Last chance: flights to %s", "New arrivals you'll love",
		"Your exclusive coupon inside",
	},
	"CATEGORY_SOCIAL": {
		"%s commented on your photo", "You have %d new notifications", "%s invited you to an event",
	},
	"CATEGORY_FORUMS": {
		"Re: [golang-nuts] generics and %s", "Digest for %s - %d updates", "[club] Spring planting",
	},
	"SPAM": {
		"You have WON %d dollars", "URGENT: verify your account", "Cheap meds from %s",
	},
	"SENT": {
		"Re: Lunch on %s?", "Agenda for %s", "Re: Quick question", "Thanks!",
	},
}

var seedWords = []string{
	"Tuesday", "Lisbon", "Kyoto", "budget", "the roadmap", "Rosa's", "Friday", "tomatoes",
	"the quarterly report", "Nairobi", "concurrency", "the garden",
}

var seedSnippets = []string{
	"Hi, just following up on what we discussed earlier this week.",
	"Please find the details below. Let me know if anything is unclear.",
	"This is an automated message, please do not reply.",
	"Thanks again for your help, it made a real difference.",
	"Here is a summary of the latest activity on your account.",
	"Don't miss out on these offers, available for a limited time only.",
	"Looking forward to seeing you soon!",
	"Attached are the numbers you asked for; the totals are at the bottom.",
}

// seedMessages makes the demo mailbox of email: n messages, newest first,
// the same for the same email every time.
func seedMessages(email string, n int) []Message {
	sum := sha256.Sum256([]byte("fakegoogle-mailbox:" + normalizeEmail(email)))
	rng := rand.New(rand.NewPCG(binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])))
	local, _, _ := strings.Cut(normalizeEmail(email), "@")
	me := contact{displayName(local), normalizeEmail(email)}

	msgs := make([]Message, n)
	date := seedNewest
	for i := range msgs {
		kind := seedKind(rng)
		var labels []string
		from, to := pick(rng, seedContacts), me
		subjectKind := kind
		switch kind {
		case "SPAM":
			from = contact{"Prize Center", fmt.Sprintf("winner%d@spam.example", rng.IntN(1000))}
			labels = []string{"SPAM", "CATEGORY_PROMOTIONS"}
		case "TRASH":
			subjectKind = "CATEGORY_PROMOTIONS"
			from = pick(rng, seedSenders[subjectKind])
			labels = []string{"TRASH", subjectKind}
		case "SENT":
			from, to = me, pick(rng, seedContacts)
			labels = []string{"SENT"}
		default:
			if senders, ok := seedSenders[kind]; ok {
				from = pick(rng, senders)
			}
			labels = []string{"INBOX", kind}
			if rng.IntN(100) < 30 {
				labels = append(labels, "UNREAD")
			}
			if rng.IntN(100) < 12 {
				labels = append(labels, "IMPORTANT")
			}
			if rng.IntN(100) < 5 {
				labels = append(labels, "STARRED")
			}
		}
		msgs[i] = Message{
			ID:       messageID(date, uint64(rng.IntN(1<<20))),
			From:     from.String(),
			To:       to.String(),
			Subject:  seedSubject(rng, subjectKind),
			Snippet:  pick(rng, seedSnippets),
			Date:     date,
			LabelIDs: labels,
		}
		date = date.Add(-time.Duration(5+rng.IntN(18*60)) * time.Minute)
	}
	threadReplies(rng, msgs)
	return msgs
}

// seedKind picks what a message is: its category, or SENT, SPAM or TRASH.
func seedKind(rng *rand.Rand) string {
	switch r := rng.IntN(100); {
	case r < 3:
		return "SPAM"
	case r < 6:
		return "TRASH"
	case r < 16:
		return "SENT"
	case r < 50:
		return "CATEGORY_PERSONAL"
	case r < 72:
		return "CATEGORY_UPDATES"
	case r < 88:
		return "CATEGORY_PROMOTIONS"
	case r < 95:
		return "CATEGORY_SOCIAL"
	default:
		return "CATEGORY_FORUMS"
	}
}

// seedSubject fills a subject template of kind with made-up values.
func seedSubject(rng *rand.Rand, kind string) string {
	tmpl := pick(rng, seedSubjects[kind])
	var args []any
	for i := 0; i < len(tmpl)-1; i++ {
		if tmpl[i] != '%' {
			continue
		}
		switch tmpl[i+1] {
		case 's':
			args = append(args, pick(rng, seedWords))
		case 'd':
			args = append(args, 2+rng.IntN(998))
		}
		i++
	}
	return fmt.Sprintf(tmpl, args...)
}

// threadReplies makes some personal messages replies to an older one: same
// thread, "Re:" subject.
func threadReplies(rng *rand.Rand, msgs []Message) {
	for i := range msgs {
		msgs[i].ThreadID = msgs[i].ID
	}
	for i := len(msgs) - 2; i >= 0; i-- {
		older := msgs[i+1]
		if !slices.Contains(msgs[i].LabelIDs, "CATEGORY_PERSONAL") || !slices.Contains(older.LabelIDs, "CATEGORY_PERSONAL") || rng.IntN(100) >= 40 {
			continue
		}
		msgs[i].ThreadID = older.ThreadID
		msgs[i].Subject = "Re: " + strings.TrimPrefix(older.Subject, "Re: ")
	}
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }
