package unsubscribe

import (
	"net/http"

	"golang.org/x/text/language"
)

// Languages the pages speak.
const (
	Dutch   = "nl"
	English = "en"
)

// text is one language's wording of the pages.
type text struct {
	Lang        string
	Title       string
	Ask         string // before the purpose's description
	ChoiceLabel string
	This        string
	All         string
	AllHint     string
	Confirm     string
	Nothing     string // what GET promises
	DoneTitle   string
	DoneThis    string // before the purpose's description
	DoneAll     string
	DoneAfter   string
	BadTitle    string
	BadText     string
	FormTitle   string
	FormText    string
	DownTitle   string
	DownText    string
	Other       string // the other language, as a link
	OtherLang   string
}

var texts = map[string]text{
	Dutch: {
		Lang:        Dutch,
		Title:       "Afmelden",
		Ask:         "Wilt u zich afmelden voor:",
		ChoiceLabel: "Waarvoor wilt u zich afmelden?",
		This:        "Alleen hiervoor",
		All:         "Alle marketingmail",
		AllHint:     "U krijgt dan geen enkele marketingmail meer van ons; berichten over uw bestellingen en account blijven komen.",
		Confirm:     "Afmelden bevestigen",
		Nothing:     "Er verandert pas iets als u op de knop drukt.",
		DoneTitle:   "U bent afgemeld",
		DoneThis:    "U bent afgemeld voor:",
		DoneAll:     "U krijgt geen marketingmail meer van ons.",
		DoneAfter:   "Dit geldt direct. U hoeft verder niets te doen.",
		BadTitle:    "Deze link werkt niet",
		BadText:     "De afmeldlink is onvolledig of beschadigd. Er is niets veranderd. Kopieer de hele link uit de e-mail, of gebruik de afmeldlink in een recentere e-mail.",
		FormTitle:   "Kies een optie",
		FormText:    "Er is niets veranderd. Ga terug en kies waarvoor u zich wilt afmelden.",
		DownTitle:   "Probeer het later opnieuw",
		DownText:    "Uw afmelding kon nu niet worden vastgelegd. Probeer het over een paar minuten opnieuw.",
		Other:       "English",
		OtherLang:   English,
	},
	English: {
		Lang:        English,
		Title:       "Unsubscribe",
		Ask:         "Do you want to unsubscribe from:",
		ChoiceLabel: "What do you want to unsubscribe from?",
		This:        "Only this",
		All:         "All marketing email",
		AllHint:     "You will get no marketing email from us at all; messages about your orders and account still come.",
		Confirm:     "Confirm unsubscribe",
		Nothing:     "Nothing changes until you press the button.",
		DoneTitle:   "You are unsubscribed",
		DoneThis:    "You are unsubscribed from:",
		DoneAll:     "You will get no more marketing email from us.",
		DoneAfter:   "This takes effect at once. There is nothing else you need to do.",
		BadTitle:    "This link does not work",
		BadText:     "The unsubscribe link is incomplete or damaged. Nothing was changed. Copy the whole link from the email, or use the unsubscribe link of a more recent email.",
		FormTitle:   "Choose an option",
		FormText:    "Nothing was changed. Go back and choose what to unsubscribe from.",
		DownTitle:   "Please try again later",
		DownText:    "Your unsubscribe could not be recorded just now. Please try again in a few minutes.",
		Other:       "Nederlands",
		OtherLang:   Dutch,
	},
}

// languagePicker chooses a page's language.
type languagePicker struct {
	matcher language.Matcher
	tags    []string // in the matcher's order
}

func newLanguagePicker(def string) languagePicker {
	other := English
	if def == English {
		other = Dutch
	}
	// The matcher falls back to its first tag.
	return languagePicker{
		matcher: language.NewMatcher([]language.Tag{language.Make(def), language.Make(other)}),
		tags:    []string{def, other},
	}
}

// pick: ?lang= (the page's own switch) first, then Accept-Language,
// then the default.
func (p languagePicker) pick(r *http.Request) text {
	if t, ok := texts[r.URL.Query().Get("lang")]; ok {
		return t
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return texts[p.tags[0]]
	}
	_, i, _ := p.matcher.Match(tags...)
	return texts[p.tags[i]]
}
