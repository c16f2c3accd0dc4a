"""Word lists of the synthetic text demo: per-topic sentences, shared context and slot values.

Why a module of its own: the tables are pure data and most of the text demo's size; keeping
them apart lets the rendering code (:mod:`raylabel.demo.text_render`) read as code. Each
topic has its own vocabulary so the easy items are learnable; everything outside the
per-topic tables (context sentences, greetings, products, names, dates) is shared by every
topic and carries no signal.
"""

from __future__ import annotations

# The demo's classes; each has an entry in every per-topic table below.
DEFAULT_TOPICS: tuple[str, ...] = (
    "billing",
    "shipping",
    "technical",
    "account",
    "returns",
    "praise",
)


# --------------------------------------------------------------------------- sentences
#
# Per topic: `TEMPLATES` (clear sentences), `VAGUE` (the same complaint without the
# topic's keywords) and `SHORT` (chat-style fragments). `{slot}` fields are filled by
# :class:`raylabel.demo.text_slots.Slots`; a slot keeps its value within one item (one
# product per message).

TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for order {order}.",
        "My credit card was billed {amount} but the invoice says {amount2}.",
        "Why did my subscription renew at {amount} when I cancelled it on {date}?",
        "There is a charge of {amount} on my card statement that I don't recognise.",
        "Can you send me a proper invoice with VAT for order {order}?",
        "The payment failed at checkout but the money still left my bank account.",
        "I upgraded to the {plan} plan and got billed for the full year instead of monthly.",
        "Please refund the duplicate payment of {amount}.",
        "My bank shows a pending transaction from you for {amount}.",
        "The promo code was not applied, so I paid the full price.",
        "I need to update the billing address printed on my invoices.",
        "Your pricing page said {amount} per month but I was charged more.",
        "The receipt for order {order} lists the wrong tax amount.",
        "I was billed after my free trial ended even though I cancelled in time.",
        "Which card is on file for my subscription? I want to switch it to a new Visa.",
        "Is there a way to pay by bank transfer instead of credit card?",
        "I got a late payment fee of {amount}, but I paid on time on {date}.",
        "The charge was in dollars and my bank added a currency conversion fee.",
        "Invoice {invoice} doesn't match the amount I actually paid.",
        "Please cancel the auto-renewal and stop charging my card.",
        "I'm {neg} about being overcharged again this month.",
        "Can I get a copy of all my invoices for my accountant?",
        "The annual fee went up by {amount} without any notice.",
    ),
    "shipping": (
        "My package for order {order} still hasn't arrived.",
        "The tracking number hasn't updated in {days} days.",
        "{carrier} says the parcel was delivered, but nothing is at my door.",
        "Delivery was promised for {date} and it's now late.",
        "Can I change the shipping address to {city} before it ships?",
        "The courier left the box outside in the rain and it was soaked.",
        "Tracking shows it stuck at the {city} depot since {date}.",
        "Is express shipping available to {city}?",
        "Why did I have to pay customs duties on delivery?",
        "Only half of my order arrived; the second parcel is missing.",
        "The driver never rang the bell and took the package back to the depot.",
        "When will order {order} be dispatched from the warehouse?",
        "The shipment says 'label created' but nothing has moved since {date}.",
        "My parcel was delivered to the wrong address.",
        "How long does standard delivery take to {city}?",
        "The box arrived crushed and the {product} inside was rattling.",
        "Can the courier leave the parcel with my neighbour next time?",
        "Please give me an updated delivery date for order {order}.",
        "It's been {days} days and the order is still 'in transit'.",
        "I paid for next-day shipping and it took over a week.",
        "{carrier} keeps rescheduling the delivery slot.",
        "The tracking link you emailed gives a 'shipment not found' page.",
    ),
    "technical": (
        "The {app} app crashes every time I open it on my {device}.",
        "I keep getting error {error} when I try to sync.",
        "My {product} won't connect to Wi-Fi after the latest firmware update.",
        "Bluetooth pairing with my {device} fails at the last step.",
        "The screen freezes after a few minutes and I have to reboot.",
        "After updating to version {version}, the settings page is blank.",
        "The battery drains from full to zero in about {hours} hours.",
        "I've tried a factory reset and reinstalling, but the bug is still there.",
        "The {product} keeps disconnecting and reconnecting.",
        "Is there a known issue between the {device} and the new software update?",
        "Error {error} pops up whenever I try to export my data.",
        "The sensor readings are way off compared to yesterday.",
        "It overheats while charging and then shuts down.",
        "The {app} app can't find the device during setup.",
        "Firmware update {version} failed halfway and now the light blinks red.",
        "Notifications stopped working on my {device}.",
        "The audio cuts out every few seconds over Bluetooth.",
        "The log shows the process exits with code {error}.",
        "Could you tell me how to roll back the firmware to the previous version?",
        "The touch controls don't respond after the {version} update.",
        "Syncing gets stuck at 99% and then times out.",
        "The {product} reboots on its own several times a day.",
    ),
    "account": (
        "I can't log in to my account even after resetting my password.",
        "The password reset email never arrives at {email}.",
        "My account got locked after too many login attempts.",
        "Please change the email address on my account to {email}.",
        "The two-factor authentication code is always rejected.",
        "I think someone else signed in to my account from {city}.",
        "How do I delete my account and all of my personal data?",
        "I have two accounts and would like to merge them into one.",
        "My username was changed without my permission.",
        "The verification code expires before I can enter it.",
        "I lost my phone and can't get the 2FA codes for my login anymore.",
        "Could you unlock my profile? I'm {name}, the account holder.",
        "The sign-in page just reloads after I enter my credentials.",
        "I never received the account activation link.",
        "Please update the phone number on my profile.",
        "I want to add my partner as a second user on the account.",
        "It says my email is already registered, but I never signed up.",
        "My login session keeps expiring every few minutes.",
        "How do I turn off marketing emails in my account settings?",
        "The security questions on my account don't accept my answers.",
        "I'd like to reset my password but the link says it's invalid.",
    ),
    "returns": (
        "I'd like to return the {product} from order {order}.",
        "The {product} is the wrong size; can I exchange it for {size}?",
        "Please send me a prepaid return label.",
        "I sent the item back on {date}; when will the return be processed?",
        "The {product} arrived faulty and I want a replacement.",
        "Is the return free or do I pay for the return postage?",
        "I don't have the original packaging anymore, can I still return it?",
        "The colour is different from the photos, so I want to send it back.",
        "Can I drop the return off at one of your stores instead of mailing it?",
        "What is your return window? I bought it {days} days ago.",
        "My RMA number is {rma}, but nobody has confirmed the return.",
        "I'd prefer an exchange rather than store credit.",
        "You received my return {days} days ago and I still have no refund.",
        "I ordered two sizes and want to return the one that doesn't fit.",
        "The {product} was a gift; can it be exchanged without a receipt?",
        "The replacement has the same fault, so I want to return it for good.",
        "Where do I print the returns form?",
        "Please arrange a pickup for the return, the {product} is too heavy to carry.",
        "Can I swap the {product} for a different colour?",
        "The returns portal says my order {order} is not eligible for return.",
        "I'm {neg} that my exchange request was declined.",
    ),
    "praise": (
        "Just wanted to say the {product} is {pos}!",
        "{agent} on your support team was incredibly helpful.",
        "Five stars, I would absolutely recommend you.",
        "Best purchase I've made this year.",
        "Thank you for the quick and friendly service.",
        "I'm {pos_feeling} with my new {product}.",
        "Your team went above and beyond for me.",
        "Great quality, and it looks even better in person.",
        "I've already recommended you to my friends and family.",
        "Love it, love it, love it.",
        "Really impressed by the attention to detail.",
        "Kudos to everyone involved, keep up the great work.",
        "It exceeded my expectations in every way.",
        "Customer service like this is rare nowadays.",
        "Super happy with my {product}, thanks a lot!",
        "Honestly the nicest company I've dealt with.",
        "{agent} sorted out my problem in minutes, what a star.",
        "I was a bit {neg} at first, but {agent} turned it around brilliantly.",
        "Delivery was faster than expected and the {product} is {pos}.",
        "Even the return process was painless, which says a lot.",
        "You have a loyal customer for life.",
        "The {product} is {pos}, worth every penny.",
    ),
}

VAGUE: dict[str, tuple[str, ...]] = {
    "billing": (
        "The number I'm seeing doesn't look right.",
        "I think I paid for something I didn't get.",
        "Something's off with the money side of things.",
        "Why is it more than last time?",
        "This amount makes no sense to me.",
        "I was expecting it to be cheaper.",
        "It came out twice, I think.",
    ),
    "shipping": (
        "Still waiting on it.",
        "It hasn't shown up.",
        "No idea where my stuff is.",
        "It was supposed to be here by now.",
        "Nothing has moved for days.",
        "I think it went somewhere else.",
        "Nobody came.",
    ),
    "technical": (
        "It just stops working sometimes.",
        "It doesn't do what it's supposed to.",
        "Something broke since yesterday.",
        "It keeps acting weird.",
        "Nothing happens when I press the button.",
        "It worked fine until last week.",
        "The light does something strange.",
    ),
    "account": (
        "I can't get in anymore.",
        "It keeps saying my details are wrong.",
        "It doesn't recognise me.",
        "I'm stuck on the first screen.",
        "It won't let me in, again.",
        "Who changed my stuff?",
        "It asks me for a code I don't have.",
    ),
    "returns": (
        "This isn't what I wanted.",
        "What are my options here? It's not right.",
        "I'd rather not keep it.",
        "It doesn't fit the way I hoped.",
        "Can I undo this somehow?",
        "I want my money back for this one.",
        "It's going back, honestly.",
    ),
    "praise": (
        "Honestly, well done.",
        "Just wanted to say something nice for once.",
        "Not bad at all, actually.",
        "You made my day.",
        "Pleasantly surprised.",
        "Keep it up.",
        "No complaints this time.",
    ),
}

SHORT: dict[str, tuple[str, ...]] = {
    "billing": ("charged twice??", "why this charge", "invoice pls", "refund?", "money gone twice"),
    "shipping": ("where is it", "still waiting", "tracking?", "parcel lost??", "late again"),
    "technical": ("broken again", "error again", "wont connect", "keeps crashing", "not working"),
    "account": ("cant get in", "locked out", "code not working", "login loop", "reset?"),
    "returns": (
        "wrong size",
        "send it back",
        "exchange?",
        "still waiting for refund",
        "doesnt fit",
    ),
    "praise": ("great job", "love it", "amazing", "thanks guys!!", "10/10", "works great now"),
}

# Topic-free sentences: context every ticket has, shared by all topics.
FILLER: tuple[str, ...] = (
    "I ordered the {product} on {date}.",
    "My order number is {order}.",
    "I've been a customer for {years} years.",
    "Not sure if this is the right place to ask.",
    "Please get back to me as soon as possible.",
    "I already wrote about this last week.",
    "My name is {name} and I'm writing about order {order}.",
    "Let me know if you need any more details.",
    "This is my second message about this.",
    "I called yesterday but nobody picked up.",
    "I've attached a screenshot.",
    "It's the {product}, bought on {date}.",
)

# Context a happy customer gives too.
FILLER_PRAISE: tuple[str, ...] = (
    "I ordered the {product} on {date}.",
    "My order number is {order}.",
    "I've been a customer for {years} years.",
    "It's the {product}, bought on {date}.",
    "Not sure if this is the right place for this.",
)

NEG_SENTENCES: tuple[str, ...] = (
    "I'm {neg} about this.",
    "Honestly I'm {neg}.",
    "Pretty {neg} right now, to be honest.",
    "This is not the experience I expected.",
)

OPENERS: tuple[str, ...] = (
    "Hi team,",
    "Hello,",
    "Hi there,",
    "Dear support,",
    "Hey,",
    "Good morning,",
    "To whom it may concern,",
    "Hi {agent},",
    "Hello support team,",
    "Dear Sir or Madam,",
)

CLOSERS: tuple[str, ...] = (
    "Thanks",
    "Thanks in advance.",
    "Regards,",
    "Best,",
    "Cheers",
    "Thank you!",
    "Kind regards,",
    "Many thanks,",
    "Looking forward to your reply.",
)

AGENT_REPLIES: tuple[str, ...] = (
    "Thank you for contacting us. I have passed your case to the relevant team and they "
    "will get back to you within two working days.",
    "We are sorry for the inconvenience. Could you please confirm the details of your "
    "request so that we can look into it further?",
    "Thanks for your patience. Your ticket has been escalated and a specialist will "
    "contact you shortly.",
    "We appreciate your message. Our team is reviewing it and will update you by email.",
)

DISCLAIMER = (
    "This email and any files transmitted with it are confidential and intended solely "
    "for the use of the individual or entity to whom they are addressed. If you have "
    "received this email in error please notify the sender and delete it. Any views or "
    "opinions presented in this email are solely those of the author and do not "
    "necessarily represent those of the company. Please consider the environment before "
    "printing this email."
)

EMOJI_NEG = ("😡", "😤", "🙁", "😞", "🤦")
EMOJI_NEU = ("🙏", "🤔", "📎", "⏳")
EMOJI_POS = ("😊", "👍", "🎉", "❤️", "😍")

# --------------------------------------------------------------------------- slot values
#
# What the `{slot}` fields of the sentences above are drawn from.

PRODUCTS = (
    "AeroBlend 300 blender",
    "Nimbus X2 headphones",
    "Trailmate 40L backpack",
    "Lumo desk lamp",
    "Pulse 2 smartwatch",
    "Orbit mesh router",
    "Kestrel e-reader",
    "Brewline coffee grinder",
    "Solace weighted blanket",
    "Vanta running shoes",
    "Halo smart thermostat",
    "Cinder cast-iron pan",
    "Drift wireless earbuds",
    "Atlas standing desk",
    "Juniper linen shirt",
    "Pico robot vacuum",
)
# Products with electronics in them: the ones a technical ticket can be about.
GADGETS = tuple(
    p for p in PRODUCTS if not p.startswith(("Trailmate", "Solace", "Vanta", "Cinder", "Juniper"))
)
DEVICES = (
    "iPhone 13",
    "Pixel 8",
    "Galaxy S22",
    "Windows 11 laptop",
    "MacBook Air",
    "iPad mini",
    "Android tablet",
    "Chromebook",
)
APPS = ("HomeHub", "FitSync", "Lumo", "Orbit", "Kestrel Reader", "companion")
NAMES = (
    "Maria Lopez",
    "Ahmed Khan",
    "Chen Wei",
    "José García",
    "Zoë Martin",
    "Łukasz Nowak",
    "Anaïs Dubois",
    "Björn Larsson",
    "Priya Natarajan",
    "Tom O'Brien",
    "Søren Holm",
    "Fatima Zahra",
    "Kenji Sato",
    "Olga Ivanova",
    "Nguyễn Thu",
    "Sam Taylor",
)
AGENTS = ("Priya", "Tom", "Sofia", "Marcus", "Aiko", "Jonas", "Elena")
CITIES = ("Leeds", "Lyon", "Austin", "Kraków", "Osaka", "Porto", "Montréal", "Gdańsk")
CARRIERS = ("DHL", "UPS", "FedEx", "DPD", "The postal service", "Royal Mail", "GLS")
PLANS = ("Pro", "Family", "Premium", "Team", "Plus")
SIZES = ("a medium", "a large", "an EU 42", "a size 10", "an XL", "a smaller one")
NEG = ("frustrated", "annoyed", "disappointed", "really upset", "confused", "fed up")
POS = ("fantastic", "brilliant", "amazing", "excellent", "superb", "lovely", "perfect")
POS_FEELING = ("delighted", "thrilled", "so happy", "really pleased", "over the moon")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
