package fakegoogle

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// seedNewest is the date of the newest seeded message. A fixed date keeps
// mailboxes (and so message IDs and page tokens) the same from run to run.
var seedNewest = time.Date(2025, time.June, 2, 9, 30, 0, 0, time.UTC)

type contact struct{ name, addr string }

func (c contact) String() string { return fmt.Sprintf("%s <%s>", c.name, c.addr) }

// first is the contact's first name, for a greeting.
func (c contact) first() string { name, _, _ := strings.Cut(c.name, " "); return name }

// seedTemplate is a subject and the start of its body. Both may name
// {placeholders} (see seedFill); a placeholder has the same value in both.
type seedTemplate struct{ subject, snippet string }

// seedSender is someone who writes one kind of mail.
type seedSender struct {
	contact
	templates []seedTemplate
}

// seedContacts are the people the user writes to and hears from.
var seedContacts = []contact{
	{"Alice Martin", "alice.martin@example.org"},
	{"Bob Nguyen", "bob@nguyen.example"},
	{"Carla Rossi", "carla.rossi@example.net"},
	{"Dmitri Volkov", "dmitri@volkov.example"},
	{"Emeka Okafor", "emeka.okafor@example.com"},
	{"Fatima Zahra", "fatima@zahra.example"},
	{"Grace Hopper", "grace@navy.example"},
	{"Hiro Tanaka", "hiro.tanaka@example.jp"},
	{"Ingrid Larsen", "ingrid.larsen@example.no"},
	{"Jamal Reed", "jamal@reed.example"},
	{"Keiko Sato", "keiko.sato@example.jp"},
	{"Lucía Fernández", "lucia.fernandez@example.es"},
	{"Marek Nowak", "marek.nowak@example.pl"},
	{"Nadia Haddad", "nadia@haddad.example"},
}

// seedPersonal is what the contacts write.
var seedPersonal = []seedTemplate{
	{"Lunch on {day}?", "Are you free for lunch on {day}? There's a new place near {place} I've been wanting to try."},
	{"Photos from {city}", "Finally sorted the photos from {city}. My favourites are attached, the rest are in the shared album."},
	{"Weekend plans", "We're thinking of a hike on Saturday if the weather holds. Want to come along? Bring {food}."},
	{"Quick question about {topic}", "Do you have ten minutes this week? I'm stuck on {topic} and would love a second opinion."},
	{"Happy birthday!", "Happy birthday! Hope you have a wonderful day. Drinks are on me next time we're in {city}."},
	{"Notes from our call", "Here are my notes from today's call about {topic}. Shout if I missed anything."},
	{"Can you review this?", "I've put a first draft of {topic} together; could you take a look before {day}?"},
	{"Dinner at {place}", "Booked a table for four at {place}, {day} at 7:30. See you there!"},
	{"Book recommendation", "Just finished a book you'd love, set in {city}. I'll bring it on {day}."},
	{"Moving day", "We move on {day} and could use a hand with the heavy boxes. Pizza included!"},
	{"Trip to {city}", "Flights to {city} are cheap in October. Shall we finally do it? I can look at places to stay."},
	{"Thank you!", "Thank you so much for {day}, it was lovely to catch up. Let's not wait another year."},
}

// seedReplies are the snippets of replies in a personal thread.
var seedReplies = []string{
	"Sounds good to me, see you then!",
	"Thanks, that's really helpful. I'll get back to you by {day}.",
	"Count me in. Should I bring anything?",
	"Sorry for the slow reply, it's been a busy week. Yes, let's do it.",
	"Ha, perfect. {day} works better for me, if that's all right.",
	"Great, I'll let the others know.",
}

// seedSent is what the user writes to the contacts.
var seedSent = []seedTemplate{
	{"Agenda for {day}", "Hi {name}, here's what I'd like to cover on {day}: {topic}, then next steps."},
	{"Re: {topic}", "Hi {name}, thanks for sending this over. A few comments inline below."},
	{"Thanks!", "Thanks {name}, that made my week."},
	{"Running late", "Hi {name}, running about ten minutes late, order without me!"},
	{"The numbers you asked for", "Hi {name}, attached are the numbers for {topic}; the totals are at the bottom."},
}

// seedSenders are the senders of the automated mail, by category.
var seedSenders = map[string][]seedSender{
	"CATEGORY_UPDATES": {
		{contact{"GitHub", "notifications@github.example"}, []seedTemplate{
			{"[{repo}] Pull request #{n} merged", "Merged #{n} into main: {change}. 3 files changed, {n} insertions(+)."},
			{"[{repo}] Build failed on main", "The build of main failed at the test step: {change}. View the logs for details."},
			{"[{repo}] New issue #{n}: {change}", "A new issue was opened: {change}. Steps to reproduce are in the description."},
		}},
		{contact{"Acme Bank", "alerts@acmebank.example"}, []seedTemplate{
			{"Your {month} statement is ready", "Your statement for {month} is now available in online banking."},
			{"Payment received", "We received your payment of {amount}. Thank you."},
			{"Security alert: new sign-in on {device}", "We noticed a new sign-in to your account from {device}. If this was you, no action is needed."},
		}},
		{contact{"Calendar", "calendar-notification@example.com"}, []seedTemplate{
			{"Reminder: {meeting} at {time}", "{meeting} starts at {time} today. Join from your calendar."},
			{"Updated invitation: {meeting}", "The organiser moved {meeting} to {day} at {time}."},
		}},
		{contact{"Parcel Tracker", "tracking@parcels.example"}, []seedTemplate{
			{"Your parcel {code} is on its way", "Good news: your parcel left our depot and should arrive on {day}."},
			{"Delivered: parcel {code}", "Your parcel was delivered today at {time} and left with a neighbour."},
		}},
		{contact{"Utility Co", "billing@utility.example"}, []seedTemplate{
			{"Invoice {n} for {month}", "Invoice {n} for {amount} is due on {day}. Thank you for your business."},
		}},
	},
	"CATEGORY_PROMOTIONS": {
		{contact{"Shoply", "deals@shoply.example"}, []seedTemplate{
			{"{percent}% off everything this weekend", "Our biggest sale of the season: {percent}% off everything until Sunday midnight."},
			{"New arrivals you'll love", "Fresh picks for you, from linen shirts to {food} baskets. Free delivery over $50."},
			{"Your cart misses you", "You left something in your cart. Complete your order today and save {percent}%."},
		}},
		{contact{"Sky Airlines", "offers@skyair.example"}, []seedTemplate{
			{"Last chance: flights to {city} from {amount}", "Book by Friday for autumn flights to {city} from {amount} return."},
			{"Your miles statement", "You have {n},000 miles. See where they can take you this year."},
		}},
		{contact{"Bookworm", "newsletter@bookworm.example"}, []seedTemplate{
			{"This week's picks: {topic}", "Five new books on {topic}, plus an interview with the author of our book of the month."},
		}},
	},
	"CATEGORY_SOCIAL": {
		{contact{"Friendly", "no-reply@friendly.example"}, []seedTemplate{
			{"{contact} commented on your photo", "{contact} commented: \"Wow, is that {city}? Beautiful!\""},
			{"You have {n} new notifications", "{contact} and {n} others reacted to your post."},
			{"{contact} invited you to an event", "{contact} invited you to a picnic in the park on {day}."},
		}},
		{contact{"PhotoShare", "notify@photoshare.example"}, []seedTemplate{
			{"{contact} shared an album with you", "{contact} shared \"{city}\" with you: 48 photos."},
		}},
	},
	"CATEGORY_FORUMS": {
		{contact{"golang-nuts", "golang-nuts@groups.example"}, []seedTemplate{
			{"Re: [golang-nuts] {golang}", "I'd measure first: a benchmark with -benchmem usually settles {golang} questions quickly."},
			{"Digest for golang-nuts - {n} updates", "Topics in this digest: {golang}, and {n} more."},
		}},
		{contact{"Gardening Club", "club@gardening.example"}, []seedTemplate{
			{"[club] Spring planting on {day}", "We meet at the allotment on {day} at 10. Seedlings of {food} for everyone."},
			{"[club] Minutes of the {month} meeting", "Attached are the minutes of the {month} meeting. Next up: the compost rota."},
		}},
	},
	"SPAM": {
		{contact{"Prize Center", "winner@prizes.example"}, []seedTemplate{
			{"You have WON {amount}!!!", "Congratulations! Claim your prize of {amount} before midnight by confirming your details."},
			{"URGENT: verify your account", "Your account will be suspended. Verify your password within 24 hours."},
		}},
	},
}

// seedValues are the values the {placeholders} take.
var seedValues = map[string][]string{
	"day":     {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"},
	"city":    {"Lisbon", "Kyoto", "Nairobi", "Oaxaca", "Reykjavík", "Tbilisi", "Melbourne", "Montréal"},
	"place":   {"the station", "Rosa's", "the market", "the old harbour", "the park"},
	"topic":   {"the roadmap", "the quarterly report", "the budget", "the garden project", "the new website", "the onboarding guide"},
	"food":    {"tomatoes", "snacks", "strawberries", "sourdough", "lemonade"},
	"repo":    {"gmail-oauth-functions", "website", "infra", "mobile-app"},
	"change":  {"fix the flaky login test", "bump the Go version", "add paging to the inbox", "handle empty search results", "faster start-up"},
	"meeting": {"Team stand-up", "1:1 with Grace", "Planning", "Design review", "Dentist"},
	"time":    {"9:00", "10:30", "13:00", "15:45", "17:15"},
	"device":  {"Chrome on Windows", "Safari on iPhone", "Firefox on Linux"},
	"percent": {"15", "20", "30", "40", "50"},
	"golang":  {"generics and interfaces", "context cancellation", "sync.Pool", "error wrapping", "iterators"},
}

// seedFill replaces each {placeholder} in s: {n} a number, {code} a parcel
// code, {amount} a sum, {contact} a contact's name, {name} the first name of
// to, any other a value of seedValues. vals keeps the values picked so far
// for this message, so that its subject and snippet agree; the caller
// gives {month}.
func seedFill(rng *rand.Rand, s string, vals map[string]string, to contact) string {
	if !strings.Contains(s, "{") {
		return s
	}
	var b strings.Builder
	for {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			b.WriteString(s)
			return b.String()
		}
		end += open
		b.WriteString(s[:open])
		key := s[open+1 : end]
		v, ok := vals[key]
		if !ok {
			switch key {
			case "n":
				v = strconv.Itoa(2 + rng.IntN(98))
			case "code":
				v = fmt.Sprintf("JD%09d", rng.IntN(1e9))
			case "amount":
				v = fmt.Sprintf("$%d.%02d", 10+rng.IntN(990), rng.IntN(100))
			case "contact":
				v = pick(rng, seedContacts).name
			case "name":
				v = to.first()
			default:
				v = pick(rng, seedValues[key])
			}
			vals[key] = v
		}
		b.WriteString(v)
		s = s[end+1:]
	}
}

// seedMessages makes the demo mailbox of email: n messages, newest first,
// spread over months, the same for the same email every time.
func seedMessages(email string, n int) []Message {
	sum := sha256.Sum256([]byte("fakegoogle-mailbox:" + normalizeEmail(email)))
	rng := rand.New(rand.NewPCG(binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])))
	local, _, _ := strings.Cut(normalizeEmail(email), "@")
	me := contact{displayName(local), normalizeEmail(email)}

	msgs := make([]Message, n)
	date := seedNewest
	for i := range msgs {
		kind := seedKind(rng)
		var (
			labels []string
			from   = me
			to     = me
			tmpl   seedTemplate
		)
		switch kind {
		case "SENT":
			to = pick(rng, seedContacts)
			tmpl = pick(rng, seedSent)
			labels = []string{"SENT"}
		case "CATEGORY_PERSONAL":
			from = pick(rng, seedContacts)
			tmpl = pick(rng, seedPersonal)
			labels = inboxLabels(rng, kind)
		default: // another category, SPAM, or TRASH (where promotions go)
			senders := seedSenders[kind]
			if kind == "TRASH" {
				senders = seedSenders["CATEGORY_PROMOTIONS"]
			}
			s := pick(rng, senders)
			from, tmpl = s.contact, pick(rng, s.templates)
			if kind == "SPAM" || kind == "TRASH" {
				labels = []string{kind, "CATEGORY_PROMOTIONS"}
			} else {
				labels = inboxLabels(rng, kind)
			}
		}
		// A statement or an invoice is for the month before.
		vals := map[string]string{"month": ((date.Month()+10)%12 + 1).String()}
		msgs[i] = Message{
			ID:       messageID(date, uint64(rng.IntN(1<<20))),
			From:     from.String(),
			To:       to.String(),
			Subject:  seedFill(rng, tmpl.subject, vals, to),
			Snippet:  seedFill(rng, tmpl.snippet, vals, to),
			Date:     date,
			LabelIDs: labels,
		}
		date = date.Add(-time.Duration(5+rng.IntN(18*60)) * time.Minute)
	}
	threadReplies(rng, msgs, me)
	return msgs
}

// inboxLabels are the labels of a message of category kind in the inbox:
// some unread, a few important or starred.
func inboxLabels(rng *rand.Rand, kind string) []string {
	labels := []string{"INBOX", kind}
	if rng.IntN(100) < 30 {
		labels = append(labels, "UNREAD")
	}
	if rng.IntN(100) < 12 {
		labels = append(labels, "IMPORTANT")
	}
	if rng.IntN(100) < 5 {
		labels = append(labels, "STARRED")
	}
	return labels
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

// threadReplies makes some personal messages replies to the older one just
// before them: same thread, same correspondent, "Re:" subject, a reply's
// snippet.
func threadReplies(rng *rand.Rand, msgs []Message, me contact) {
	for i := range msgs {
		msgs[i].ThreadID = msgs[i].ID
	}
	for i := len(msgs) - 2; i >= 0; i-- {
		older := msgs[i+1]
		if !slices.Contains(msgs[i].LabelIDs, "CATEGORY_PERSONAL") || !slices.Contains(older.LabelIDs, "CATEGORY_PERSONAL") || rng.IntN(100) >= 40 {
			continue
		}
		msgs[i].ThreadID, msgs[i].From = older.ThreadID, older.From
		msgs[i].Subject = "Re: " + strings.TrimPrefix(older.Subject, "Re: ")
		msgs[i].Snippet = seedFill(rng, pick(rng, seedReplies), map[string]string{}, me)
	}
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }
