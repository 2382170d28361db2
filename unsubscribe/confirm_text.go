package unsubscribe

// confirmText is one language's wording of the /confirm/ pages; the
// frame, the language switch and the titles of a bad link and a store
// that is down come from text.
type confirmText struct {
	Title        string
	Ask          string // before the purpose's description
	Button       string
	Nothing      string // what GET promises
	DoneTitle    string
	Done         string // before the purpose's description
	AlreadyTitle string
	Already      string // before the purpose's description
	After        string // how to stop again
	BadText      string
	ExpiredTitle string
	ExpiredText  string
	GoneTitle    string
	GoneText     string
	DownText     string
}

var confirmTexts = map[string]confirmText{
	Dutch: {
		Title:        "Aanmelding bevestigen",
		Ask:          "Bevestig dat u zich wilt aanmelden voor:",
		Button:       "Aanmelding bevestigen",
		Nothing:      "Er verandert pas iets als u op de knop drukt. Doet u niets, dan wordt u niet aangemeld.",
		DoneTitle:    "Uw aanmelding is bevestigd",
		Done:         "U bent aangemeld voor:",
		AlreadyTitle: "U was al aangemeld",
		Already:      "Uw aanmelding was al bevestigd, er is niets veranderd. U bent aangemeld voor:",
		After:        "U kunt zich altijd weer afmelden met de link onder aan elke e-mail.",
		BadText:      "De bevestigingslink is onvolledig of beschadigd. Er is niets veranderd. Kopieer de hele link uit de e-mail.",
		ExpiredTitle: "Deze link is verlopen",
		ExpiredText:  "De bevestigingslink werkt niet meer. Er is niets veranderd: u bent niet aangemeld. Wilt u zich toch aanmelden, meld u dan opnieuw aan.",
		GoneTitle:    "Er valt niets te bevestigen",
		GoneText:     "Deze aanmelding staat niet meer open: ze is ingetrokken of verwijderd. Er is niets veranderd. Wilt u zich toch aanmelden, meld u dan opnieuw aan.",
		DownText:     "Uw bevestiging kon nu niet worden vastgelegd. Probeer het over een paar minuten opnieuw.",
	},
	English: {
		Title:        "Confirm your subscription",
		Ask:          "Please confirm that you want to sign up for:",
		Button:       "Confirm subscription",
		Nothing:      "Nothing changes until you press the button. If you do nothing, you will not be signed up.",
		DoneTitle:    "Your subscription is confirmed",
		Done:         "You are signed up for:",
		AlreadyTitle: "You were already signed up",
		Already:      "Your subscription was confirmed before; nothing was changed. You are signed up for:",
		After:        "You can unsubscribe at any time with the link at the bottom of every email.",
		BadText:      "The confirmation link is incomplete or damaged. Nothing was changed. Copy the whole link from the email.",
		ExpiredTitle: "This link has expired",
		ExpiredText:  "The confirmation link no longer works. Nothing was changed: you are not signed up. If you still want to be, please sign up again.",
		GoneTitle:    "There is nothing to confirm",
		GoneText:     "This sign-up is no longer open: it was withdrawn or removed. Nothing was changed. If you still want to be signed up, please sign up again.",
		DownText:     "Your confirmation could not be recorded just now. Please try again in a few minutes.",
	},
}
