package portal

import (
	"fmt"
	"time"

	"optinproxy/optin"
	"optinproxy/unsubscribe"
)

// text is one language's wording of the portal.
type text struct {
	Lang      string
	Other     string // the other language, as a link
	OtherLang string

	// The request form at /p.
	RequestTitle, RequestIntro, EmailLabel, RequestButton string
	BadAddress                                            string
	SentTitle, SentText, SentNothing                      string // SentText has the link's lifetime
	LimitTitle, LimitText                                 string

	// Problems.
	BadTitle, BadText             string
	ExpiredTitle, ExpiredText     string
	MovedTitle, MovedText         string
	NewLink                       string
	ForbiddenTitle, ForbiddenText string
	FormTitle, FormText           string
	DownTitle, DownText           string
	NoDataTitle, NoDataText       string
	MissingTitle, MissingText     string

	// The portal.
	Title, Intro                              string // Intro has the address and the link's end
	PurposesTitle                             string
	StateLabel, SinceLabel, ExpiresLabel      string
	BasisLabel                                string
	States                                    map[string]string
	Bases                                     map[optin.Basis]string
	Fixed, Suppressed, PendingHint            string
	GrantButton, WithdrawButton               string
	HistoryCaption, WhenLabel, WhatLabel, Via string
	NoHistory, Older, OlderOne                string // Older has a count above one
	Messages                                  string // sent, held back, last time
	Events                                    map[optin.EventType]string
	Sources                                   map[string]string
	MovedTo, MovedFrom                        string
	SuppressionsTitle, NoSuppressions         string
	Suppressions                              map[optin.SuppressionReason]string
	AddressHistory                            string
	ExportTitle, ExportText                   string
	FormatLabels                              map[string]string
	AddressTitle, AddressText                 string
	AddressLegend, NewAddressLabel            string
	AgainLabel, AddressBtn                    string
	ErasureTitle, ErasureText                 string
	ErasureLegend, ErasureConfirm             string
	ErasureButton                             string
	ErasedTitle                               string
	Erased                                    []string
	Notices                                   map[string]string // by notice code; %s is the purpose where there is one

	// Durations: singular and plural of days, hours and minutes.
	Day, Days, Hour, Hours, Minute, Minutes string
}

// OlderText says how many older history rows the page leaves to the
// download: "1 entries" reads as a bug.
func (t text) OlderText(n int) string {
	if n == 1 {
		return t.OlderOne
	}
	return fmt.Sprintf(t.Older, n)
}

// lasting is the wording of how long a link works.
func (t text) lasting(d time.Duration) string {
	n, one, many := int(d/time.Minute), t.Minute, t.Minutes
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		n, one, many = int(d/(24*time.Hour)), t.Day, t.Days
	case d >= time.Hour && d%time.Hour == 0:
		n, one, many = int(d/time.Hour), t.Hour, t.Hours
	}
	if n == 1 {
		return one
	}
	return fmt.Sprintf(many, n)
}

var texts = map[string]text{
	unsubscribe.Dutch: {
		Lang: unsubscribe.Dutch, Other: "English", OtherLang: unsubscribe.English,

		RequestTitle:  "Uw gegevens inzien",
		RequestIntro:  "Vul uw e-mailadres in. Als wij gegevens over dit adres bewaren, sturen wij er een persoonlijke link naartoe. Daarmee ziet u wat wij over u bewaren, past u uw keuzes aan, downloadt u uw gegevens of laat u ze wissen.",
		EmailLabel:    "E-mailadres",
		RequestButton: "Stuur mij een link",
		BadAddress:    "Dit is geen geldig e-mailadres. Controleer het en probeer het opnieuw.",
		SentTitle:     "Kijk in uw mailbox",
		SentText:      "Als wij gegevens over dit adres bewaren, is er nu een link naartoe onderweg. De link werkt %s.",
		SentNothing:   "Krijgt u binnen een paar minuten niets? Dan bewaren wij niets over dit adres, of kijk in uw map met ongewenste mail.",
		LimitTitle:    "Even geduld",
		LimitText:     "Er zijn de laatste tijd te veel links aangevraagd. Er is niets verstuurd. Probeer het over een uur opnieuw.",

		BadTitle:       "Deze link werkt niet",
		BadText:        "De link is onvolledig of beschadigd. Er is niets veranderd. Kopieer de hele link uit de e-mail, of vraag een nieuwe link aan.",
		ExpiredTitle:   "Deze link is verlopen",
		ExpiredText:    "Om uw gegevens te beschermen werkt een link maar korte tijd. Er is niets veranderd. Vraag een nieuwe link aan.",
		MovedTitle:     "Deze link werkt niet meer",
		MovedText:      "Het e-mailadres van deze link is gewijzigd. Vraag een nieuwe link aan voor uw nieuwe adres.",
		NewLink:        "Een nieuwe link aanvragen",
		ForbiddenTitle: "Dit formulier werkt niet meer",
		ForbiddenText:  "Er is niets veranderd. Het formulier kwam niet van deze pagina, of uw browser stuurde het cookie van deze pagina niet mee. Laad de pagina opnieuw en probeer het nog eens; cookies moeten aan staan.",
		FormTitle:      "Er ging iets mis met het formulier",
		FormText:       "Er is niets veranderd. Ga terug, laad de pagina opnieuw en probeer het nog eens.",
		DownTitle:      "Probeer het later opnieuw",
		DownText:       "Uw verzoek kon nu niet worden verwerkt. Probeer het over een paar minuten opnieuw.",
		NoDataTitle:    "Geen gegevens",
		NoDataText:     "Wij bewaren geen gegevens over dit e-mailadres.",
		MissingTitle:   "Deze pagina bestaat niet",
		MissingText:    "Controleer het adres van de pagina, of vraag een nieuwe link aan.",

		Title:         "Uw gegevens",
		Intro:         "Dit bewaren wij over %s. Deze link werkt tot %s.",
		PurposesTitle: "Waarvoor wij u mailen",
		StateLabel:    "Stand",
		SinceLabel:    "Sinds",
		ExpiresLabel:  "Verloopt",
		BasisLabel:    "Grondslag",
		States: map[string]string{
			"granted": "U heeft toestemming gegeven", "pending": "Wacht op uw bevestiging", "withdrawn": "Ingetrokken",
			"expired": "Verlopen", "none": "Geen keuze vastgelegd",
		},
		Bases: map[optin.Basis]string{
			optin.BasisConsent:             "uw toestemming",
			optin.BasisContract:            "nodig voor een overeenkomst met u",
			optin.BasisLegalObligation:     "een wettelijke plicht",
			optin.BasisVitalInterests:      "een vitaal belang",
			optin.BasisPublicTask:          "een taak van algemeen belang",
			optin.BasisLegitimateInterests: "ons gerechtvaardigd belang; u kunt bezwaar maken",
		},
		Fixed:          "Deze berichten horen bij uw bestellingen of account, of wij moeten ze sturen. U kunt ze hier niet uitzetten.",
		Suppressed:     "Zolang er een blokkade op uw adres staat (zie hieronder), krijgt u hiervoor geen mail.",
		PendingHint:    "Bevestig dit met de link in de e-mail die wij u sturen.",
		GrantButton:    "Ik wil dit ontvangen",
		WithdrawButton: "Ik wil dit niet meer ontvangen",
		HistoryCaption: "Geschiedenis",
		WhenLabel:      "Wanneer",
		WhatLabel:      "Wat",
		Via:            "Via",
		NoHistory:      "Nog niets vastgelegd.",
		Older:          "De %d oudere regels staan in de download.",
		OlderOne:       "De oudere regel staat in de download.",
		Messages:       "Berichten: %d verstuurd, %d tegengehouden; het laatste op %s.",
		Events: map[optin.EventType]string{
			optin.EventConsentGranted: "Toestemming gegeven", optin.EventConsentPending: "Aangevraagd, wacht op bevestiging",
			optin.EventConsentWithdrawn: "Ingetrokken", optin.EventConsentExpired: "Verlopen",
			optin.EventConsentExpiring: "Bericht dat de toestemming bijna verloopt", optin.EventSubjectUpdated: "Adres gewijzigd",
			optin.EventSubjectErased: "Gegevens gewist", optin.EventSuppressionAdded: "Blokkade geplaatst",
			optin.EventSuppressionRemoved: "Blokkade opgeheven",
		},
		Sources: map[string]string{
			optin.SourceForm: "formulier", optin.SourceDoubleOptIn: "bevestigingsmail", optin.SourceImport: "import",
			optin.SourceAPI: "onze administratie", optin.SourceCRM: "ons klantsysteem", optin.SourceMailchimp: "Mailchimp",
			optin.SourcePortal: "deze pagina", optin.SourceUnsubscribe: "afmeldlink", optin.SourceMoved: "adreswijziging",
		},
		MovedTo:           "Adres gewijzigd naar %s",
		MovedFrom:         "Adres gewijzigd van %s",
		SuppressionsTitle: "Blokkades op uw adres",
		NoSuppressions:    "Er staat geen blokkade op uw adres.",
		Suppressions: map[optin.SuppressionReason]string{
			optin.SuppressUnsubscribedAll: "U heeft zich afgemeld voor alle marketingmail.",
			optin.SuppressHardBounce:      "Mail aan dit adres kwam onbestelbaar terug; wij sturen er geen mail meer naartoe.",
			optin.SuppressComplaint:       "U heeft een bericht van ons als spam gemeld; wij sturen u geen marketingmail meer.",
			optin.SuppressErased:          "Uw gegevens zijn gewist; wij sturen dit adres niets meer.",
			optin.SuppressManual:          "Wij hebben dit adres op verzoek geblokkeerd; wij sturen u geen marketingmail.",
		},
		AddressHistory:  "Wijzigingen aan uw adres",
		ExportTitle:     "Uw gegevens downloaden",
		ExportText:      "Alles wat wij over u bewaren in één bestand: uw toestemmingen met hun bewijs, de blokkades en de volledige geschiedenis, ook van de berichten die wij u stuurden.",
		FormatLabels:    map[string]string{"json": "JSON (voor programma's)", "csv": "CSV (voor een spreadsheet)", "xlsx": "Excel (XLSX)"},
		AddressTitle:    "Uw e-mailadres wijzigen",
		AddressText:     "Uw keuzes en geschiedenis gaan mee naar het nieuwe adres; aan het oude adres sturen wij daarna niets meer. Deze link werkt dan niet meer: u gaat meteen naar uw gegevens onder het nieuwe adres.",
		AddressLegend:   "Twee keer, om tikfouten te voorkomen",
		NewAddressLabel: "Nieuw e-mailadres",
		AgainLabel:      "Nieuw e-mailadres nogmaals",
		AddressBtn:      "Adres wijzigen",
		ErasureTitle:    "Uw gegevens laten wissen",
		ErasureText:     "Wij wissen uw keuzes en blokkades en maken uw geschiedenis bij ons onleesbaar. Daarna sturen wij u niets meer: uw adres blijft geblokkeerd, zodat het niet per ongeluk opnieuw wordt toegevoegd. Dit kan niet ongedaan worden gemaakt.",
		ErasureLegend:   "Bevestigen",
		ErasureConfirm:  "Ja, wis al mijn gegevens",
		ErasureButton:   "Mijn gegevens wissen",
		ErasedTitle:     "Uw gegevens zijn gewist",
		Erased: []string{
			"Uw toestemmingen, keuzes en blokkades zijn verwijderd.",
			"Uw geschiedenis bij ons is onleesbaar gemaakt: de sleutel waarmee ze versleuteld was, is vernietigd. Zodra onze back-ups van voor dat moment verlopen zijn, is ze ook daar niet meer te lezen.",
			"Wat blijft, is een code die van uw adres is afgeleid en niet terug te rekenen is. Daarmee blijft uw adres geblokkeerd: wij sturen u niets meer en voegen het niet per ongeluk opnieuw toe.",
		},
		Notices: map[string]string{
			"granted":   "Opgeslagen: u ontvangt %s.",
			"pending":   "Bijna klaar: bevestig %s met de link in de e-mail die wij u sturen.",
			"withdrawn": "Opgeslagen: u ontvangt %s niet meer.",
			"unchanged": "Dit stond al zo vastgelegd. Er is niets veranderd.",
			"moved":     "Uw e-mailadres is gewijzigd. Dit is de pagina van uw nieuwe adres; de oude link werkt niet meer.",
			"mismatch":  "De twee adressen zijn niet gelijk. Er is niets veranderd.",
			"same":      "Dit is al uw e-mailadres. Er is niets veranderd.",
			"bad":       "Het nieuwe adres is geen geldig e-mailadres. Er is niets veranderd.",
			"confirm":   "Vink het vakje aan om het wissen te bevestigen. Er is niets gewist.",
			"erased_address": "Uw gegevens kunnen niet naar dit adres: de gegevens van dit adres zijn gewist en het blijft geblokkeerd. " +
				"Er is niets veranderd.",
		},

		Day: "1 dag", Days: "%d dagen", Hour: "1 uur", Hours: "%d uur", Minute: "1 minuut", Minutes: "%d minuten",
	},
	unsubscribe.English: {
		Lang: unsubscribe.English, Other: "Nederlands", OtherLang: unsubscribe.Dutch,

		RequestTitle:  "See your data",
		RequestIntro:  "Enter your email address. If we hold data about it, we send a personal link to it. With that link you see what we keep about you, change your choices, download your data or have it erased.",
		EmailLabel:    "Email address",
		RequestButton: "Send me a link",
		BadAddress:    "This is not a valid email address. Check it and try again.",
		SentTitle:     "Check your mailbox",
		SentText:      "If we hold data about this address, a link is on its way to it. The link works for %s.",
		SentNothing:   "Nothing within a few minutes? Then we hold nothing about this address, or look in your spam folder.",
		LimitTitle:    "Please wait",
		LimitText:     "Too many links were asked for lately. Nothing was sent. Please try again in an hour.",

		BadTitle:       "This link does not work",
		BadText:        "The link is incomplete or damaged. Nothing was changed. Copy the whole link from the email, or ask for a new link.",
		ExpiredTitle:   "This link has expired",
		ExpiredText:    "To protect your data, a link works for a short time only. Nothing was changed. Ask for a new link.",
		MovedTitle:     "This link no longer works",
		MovedText:      "The email address of this link was changed. Ask for a new link for your new address.",
		NewLink:        "Ask for a new link",
		ForbiddenTitle: "This form no longer works",
		ForbiddenText:  "Nothing was changed. The form did not come from this page, or your browser did not send this page's cookie with it. Reload the page and try again; cookies must be on.",
		FormTitle:      "Something went wrong with the form",
		FormText:       "Nothing was changed. Go back, reload the page and try again.",
		DownTitle:      "Please try again later",
		DownText:       "Your request could not be handled just now. Please try again in a few minutes.",
		NoDataTitle:    "No data",
		NoDataText:     "We hold no data about this email address.",
		MissingTitle:   "This page does not exist",
		MissingText:    "Check the page's address, or ask for a new link.",

		Title:         "Your data",
		Intro:         "This is what we keep about %s. This link works until %s.",
		PurposesTitle: "What we mail you for",
		StateLabel:    "State",
		SinceLabel:    "Since",
		ExpiresLabel:  "Expires",
		BasisLabel:    "Legal basis",
		States: map[string]string{
			"granted": "You agreed", "pending": "Awaiting your confirmation", "withdrawn": "Withdrawn",
			"expired": "Expired", "none": "No choice recorded",
		},
		Bases: map[optin.Basis]string{
			optin.BasisConsent:             "your consent",
			optin.BasisContract:            "needed for a contract with you",
			optin.BasisLegalObligation:     "a legal obligation",
			optin.BasisVitalInterests:      "a vital interest",
			optin.BasisPublicTask:          "a task in the public interest",
			optin.BasisLegitimateInterests: "our legitimate interest; you may object",
		},
		Fixed:          "These messages belong to your orders or account, or we must send them. You cannot switch them off here.",
		Suppressed:     "While your address is blocked (see below), you get no mail for this.",
		PendingHint:    "Confirm it with the link in the email we send you.",
		GrantButton:    "Send me this",
		WithdrawButton: "Stop sending me this",
		HistoryCaption: "History",
		WhenLabel:      "When",
		WhatLabel:      "What",
		Via:            "Through",
		NoHistory:      "Nothing recorded yet.",
		Older:          "The %d older entries are in the download.",
		OlderOne:       "The older entry is in the download.",
		Messages:       "Messages: %d sent, %d held back; the last on %s.",
		Events: map[optin.EventType]string{
			optin.EventConsentGranted: "Consent given", optin.EventConsentPending: "Asked for, awaiting confirmation",
			optin.EventConsentWithdrawn: "Withdrawn", optin.EventConsentExpired: "Expired",
			optin.EventConsentExpiring: "Notice that the consent is about to expire", optin.EventSubjectUpdated: "Address changed",
			optin.EventSubjectErased: "Data erased", optin.EventSuppressionAdded: "Block added",
			optin.EventSuppressionRemoved: "Block lifted",
		},
		Sources: map[string]string{
			optin.SourceForm: "form", optin.SourceDoubleOptIn: "confirmation email", optin.SourceImport: "import",
			optin.SourceAPI: "our administration", optin.SourceCRM: "our customer system", optin.SourceMailchimp: "Mailchimp",
			optin.SourcePortal: "this page", optin.SourceUnsubscribe: "unsubscribe link", optin.SourceMoved: "address change",
		},
		MovedTo:           "Address changed to %s",
		MovedFrom:         "Address changed from %s",
		SuppressionsTitle: "Blocks on your address",
		NoSuppressions:    "Your address is not blocked.",
		Suppressions: map[optin.SuppressionReason]string{
			optin.SuppressUnsubscribedAll: "You unsubscribed from all marketing email.",
			optin.SuppressHardBounce:      "Mail to this address bounced; we no longer send mail to it.",
			optin.SuppressComplaint:       "You reported a message of ours as spam; we send you no more marketing email.",
			optin.SuppressErased:          "Your data was erased; we send this address nothing.",
			optin.SuppressManual:          "We blocked this address on request; we send you no marketing email.",
		},
		AddressHistory:  "Changes to your address",
		ExportTitle:     "Download your data",
		ExportText:      "Everything we keep about you in one file: your consents with their evidence, the blocks, and the whole history, including the messages we sent you.",
		FormatLabels:    map[string]string{"json": "JSON (for programs)", "csv": "CSV (for a spreadsheet)", "xlsx": "Excel (XLSX)"},
		AddressTitle:    "Change your email address",
		AddressText:     "Your choices and history move to the new address; we send nothing to the old one afterwards. This link then stops working: you go straight to your data under the new address.",
		AddressLegend:   "Twice, to catch typing mistakes",
		NewAddressLabel: "New email address",
		AgainLabel:      "New email address again",
		AddressBtn:      "Change address",
		ErasureTitle:    "Have your data erased",
		ErasureText:     "We erase your choices and blocks and make your history with us unreadable. We send you nothing afterwards: your address stays blocked, so that it is not added again by mistake. This cannot be undone.",
		ErasureLegend:   "Confirm",
		ErasureConfirm:  "Yes, erase all my data",
		ErasureButton:   "Erase my data",
		ErasedTitle:     "Your data has been erased",
		Erased: []string{
			"Your consents, choices and blocks are deleted.",
			"Your history with us is made unreadable: the key it was encrypted with is destroyed. Once our backups from before then have expired, it cannot be read there either.",
			"What stays is a code derived from your address that cannot be turned back into it. It keeps your address blocked: we send you nothing and do not add it again by mistake.",
		},
		Notices: map[string]string{
			"granted":   "Saved: you will get %s.",
			"pending":   "Almost done: confirm %s with the link in the email we send you.",
			"withdrawn": "Saved: you will no longer get %s.",
			"unchanged": "This was recorded already. Nothing was changed.",
			"moved":     "Your email address was changed. This is the page of your new address; the old link no longer works.",
			"mismatch":  "The two addresses differ. Nothing was changed.",
			"same":      "This is your address already. Nothing was changed.",
			"bad":       "The new address is not a valid email address. Nothing was changed.",
			"confirm":   "Tick the box to confirm the erasure. Nothing was erased.",
			"erased_address": "Your data cannot move to this address: its data was erased, and it stays blocked. " +
				"Nothing was changed.",
		},

		Day: "1 day", Days: "%d days", Hour: "1 hour", Hours: "%d hours", Minute: "1 minute", Minutes: "%d minutes",
	},
}
