"""Reference data of the demo set: cities, names, the service catalogue, departments, reasons
and texts; the in-memory records sections pass to each other; the demo's price arithmetic."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ombaro.money import round_money

PLATFORM_ZONE = ZoneInfo("Asia/Kolkata")
UTC = dt.UTC
GST_RATE = Decimal("0.18")
HISTORY_DAYS = 90
UPCOMING_DAYS = 2
BATCH_ROWS = 2000
# '!' is the conventional "no usable password" marker (never a valid hash): demo people sign in only
# once enable_demo_logins (devtools/demo/logins.py) gives one account per role a password.
UNUSABLE_PASSWORD = "!"

Row = dict[str, Any]


def money(value: Decimal | int | str) -> Decimal:
    """To the paisa, half away from zero (ombaro/money.py): the one rounding of demo amounts."""
    return round_money(Decimal(value))


def item_price(base_price_60min: Decimal, duration: int) -> Decimal:
    return money(base_price_60min * duration / 60)


def gst_on(taxable: Decimal) -> Decimal:
    return money(taxable * GST_RATE)


@dataclass(frozen=True)
class City:
    name: str
    state: str
    gst_state_code: str
    latitude: float
    longitude: float
    language: str
    localities: tuple[tuple[str, str], ...]  # (locality, pincode)


CITIES: dict[str, City] = {
    c.name: c
    for c in (
        City("Mumbai", "Maharashtra", "27", 19.0760, 72.8777, "Marathi", (
            ("Colaba", "400005"), ("Lower Parel", "400013"), ("Worli", "400018"),
            ("Bandra West", "400050"), ("Juhu", "400049"), ("Andheri West", "400053"),
            ("Powai", "400076"), ("Goregaon East", "400063"), ("Malad West", "400064"),
            ("Chembur", "400071"))),
        City("Delhi", "Delhi", "07", 28.6139, 77.2090, "Punjabi", (
            ("Connaught Place", "110001"), ("Karol Bagh", "110005"), ("Lajpat Nagar", "110024"),
            ("Greater Kailash", "110048"), ("Hauz Khas", "110016"), ("Saket", "110017"),
            ("Vasant Kunj", "110070"), ("Rajouri Garden", "110027"), ("Janakpuri", "110058"),
            ("Dwarka", "110075"))),
        City("Bengaluru", "Karnataka", "29", 12.9716, 77.5946, "Kannada", (
            ("Indiranagar", "560038"), ("Koramangala", "560034"), ("HSR Layout", "560102"),
            ("Jayanagar", "560041"), ("JP Nagar", "560078"), ("Malleshwaram", "560003"),
            ("Hebbal", "560024"), ("Whitefield", "560066"), ("Marathahalli", "560037"),
            ("Electronic City", "560100"))),
        City("Hyderabad", "Telangana", "36", 17.3850, 78.4867, "Telugu", (
            ("Banjara Hills", "500034"), ("Jubilee Hills", "500033"), ("Begumpet", "500016"),
            ("Ameerpet", "500073"), ("Secunderabad", "500003"), ("Madhapur", "500081"),
            ("Gachibowli", "500032"), ("Kondapur", "500084"), ("Kukatpally", "500072"),
            ("HITEC City", "500081"))),
        City("Chennai", "Tamil Nadu", "33", 13.0827, 80.2707, "Tamil", (
            ("T. Nagar", "600017"), ("Nungambakkam", "600034"), ("Alwarpet", "600018"),
            ("Mylapore", "600004"), ("Adyar", "600020"), ("Besant Nagar", "600090"),
            ("Velachery", "600042"), ("Anna Nagar", "600040"), ("Porur", "600116"),
            ("Thoraipakkam", "600097"))),
        City("Pune", "Maharashtra", "27", 18.5204, 73.8567, "Marathi", (
            ("Camp", "411001"), ("Koregaon Park", "411001"), ("Kalyani Nagar", "411006"),
            ("Viman Nagar", "411014"), ("Aundh", "411007"), ("Baner", "411045"),
            ("Kothrud", "411038"), ("Hinjewadi", "411057"), ("Wakad", "411057"),
            ("Magarpatta", "411028"))),
        City("Kolkata", "West Bengal", "19", 22.5726, 88.3639, "Bengali", (
            ("Park Street", "700016"), ("Ballygunge", "700019"), ("Alipore", "700027"),
            ("Gariahat", "700019"), ("Tollygunge", "700033"), ("Behala", "700034"),
            ("Salt Lake", "700091"), ("New Town", "700156"), ("Rajarhat", "700135"),
            ("Dum Dum", "700028"))),
        City("Jaipur", "Rajasthan", "08", 26.9124, 75.7873, "Rajasthani", (
            ("C-Scheme", "302001"), ("Bani Park", "302016"), ("Civil Lines", "302006"),
            ("Raja Park", "302004"), ("Malviya Nagar", "302017"), ("Mansarovar", "302020"),
            ("Vaishali Nagar", "302021"), ("Tonk Road", "302015"), ("Jagatpura", "302017"),
            ("Sodala", "302006"))),
    )
}
# Vendors per city at scale 1.0 (40 in all); the bigger metros first so small scales keep them.
CITY_WEIGHTS = {"Mumbai": 8, "Delhi": 7, "Bengaluru": 7, "Hyderabad": 5, "Chennai": 4, "Pune": 4,
                "Kolkata": 3, "Jaipur": 2}

MALE_FIRST = (
    "Aarav", "Vihaan", "Aditya", "Arjun", "Sai", "Reyansh", "Krishna", "Ishaan", "Rohan", "Kabir",
    "Aniket", "Rahul", "Amit", "Vikram", "Siddharth", "Karan", "Nikhil", "Pranav", "Harsh", "Manish",
    "Suresh", "Rajesh", "Deepak", "Sandeep", "Ravi", "Anil", "Gaurav", "Varun", "Akash", "Yash",
    "Tushar", "Abhishek", "Naveen", "Prakash", "Mohit", "Rakesh", "Imran", "Farhan", "Joseph", "Thomas",
)
FEMALE_FIRST = (
    "Aanya", "Diya", "Ananya", "Saanvi", "Priya", "Pooja", "Neha", "Sneha", "Kavya", "Isha",
    "Riya", "Meera", "Anjali", "Divya", "Shreya", "Nisha", "Swati", "Aishwarya", "Lakshmi", "Deepika",
    "Pallavi", "Shweta", "Ritu", "Sunita", "Geeta", "Rekha", "Kavita", "Nandini", "Tanvi", "Radhika",
    "Fatima", "Zoya", "Ayesha", "Mary", "Sonal", "Bhavna", "Jyoti", "Madhuri", "Sakshi", "Trisha",
)
SURNAMES = (
    "Sharma", "Verma", "Gupta", "Patel", "Shah", "Mehta", "Iyer", "Nair", "Menon", "Reddy",
    "Rao", "Naidu", "Pillai", "Kulkarni", "Deshpande", "Joshi", "Patil", "Chatterjee", "Banerjee",
    "Mukherjee", "Das", "Bose", "Sen", "Ghosh", "Singh", "Kaur", "Gill", "Khan", "Qureshi",
    "Fernandes", "D'Souza", "Pinto", "Agarwal", "Jain", "Bansal", "Chopra", "Kapoor", "Malhotra",
    "Bhat", "Hegde", "Shetty", "Kumar", "Yadav", "Mishra", "Tiwari", "Pandey", "Saxena", "Thakur",
    "Chauhan", "Rathore", "Subramanian", "Krishnan", "Gowda", "Choudhury", "Dutta",
)
# Many spa therapists in Indian metros come from the north-east and Kerala.
THERAPIST_SURNAMES = (*SURNAMES, "Lepcha", "Tamang", "Gurung", "Sangma", "Devi", "Singha", "Rai",
                      "Thomas", "Varghese", "Kurian")
STREETS = ("MG Road", "Link Road", "Station Road", "Main Road", "Ring Road", "Hill Road", "Church Street",
           "Park Avenue", "Lake Road", "Temple Street", "1st Cross Road", "2nd Main Road", "Nehru Marg",
           "Gandhi Road")
BUILDINGS = ("Sai Krupa Apartments", "Shanti Niketan", "Green Valley Residency", "Lotus Heights",
             "Sunrise Towers", "Palm Grove", "Silver Oak Residency", "Krishna Kunj", "Ganga Enclave",
             "Royal Palms", "Prestige Residency", "Sobha Meadows")
LANDMARKS = ("Near City Mall", "Opp. Metro Station", "Near HDFC Bank", "Behind Police Station",
             "Next to Cafe Coffee Day", "Near Ganesh Temple", "Opp. Apollo Pharmacy", "Near Central Park")
BANKS = (("HDFC Bank", "HDFC0"), ("ICICI Bank", "ICIC0"), ("State Bank of India", "SBIN0"),
         ("Axis Bank", "UTIB0"), ("Kotak Mahindra Bank", "KKBK0"), ("Yes Bank", "YESB0"))


@dataclass(frozen=True)
class ServiceSpec:
    code: str
    name: str
    category: str
    pressure: int
    durations: tuple[int, ...]
    price: str
    popularity: int
    style: str
    description: str
    techniques: str
    focus_areas: str
    benefits: str
    oils: str
    addons: tuple[str, ...]


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("SWD", "Swedish Massage", "relaxation", 2, (60, 90, 120), "1800.00", 22, "European",
                 "Long flowing strokes that ease muscle tension and improve circulation.",
                 "effleurage, petrissage, friction, tapotement", "full body",
                 "relaxation, better sleep, improved circulation", "sweet almond oil", ("HTW", "HED")),
    ServiceSpec("ARO", "Aromatherapy Massage", "relaxation", 2, (60, 90, 120), "2200.00", 20, "Holistic",
                 "Gentle massage with essential oils chosen for calm or energy.",
                 "light effleurage, acupressure points", "full body, back, shoulders",
                 "stress relief, mood uplift", "lavender, eucalyptus, lemongrass blends", ("HTW", "EYE")),
    ServiceSpec("DPT", "Deep Tissue Massage", "therapeutic", 4, (60, 90, 120), "2800.00", 16, "Clinical",
                 "Slow, firm pressure on deeper muscle layers and fascia.",
                 "stripping, cross-fibre friction, trigger point work", "back, neck, shoulders, legs",
                 "chronic pain relief, mobility", "unscented grapeseed oil", ("CUP", "HTW")),
    ServiceSpec("BAL", "Balinese Massage", "relaxation", 3, (60, 90), "2600.00", 8, "Indonesian",
                 "Traditional Balinese blend of stretches, acupressure and aromatherapy.",
                 "skin rolling, kneading, acupressure", "full body",
                 "relaxation, energy flow", "frangipani and coconut oil", ("BSC", "HTW")),
    ServiceSpec("THA", "Thai Massage", "therapeutic", 4, (60, 90, 120), "2500.00", 10, "Thai",
                 "Assisted yoga-like stretches on a floor mat, fully clothed.",
                 "compression, passive stretching, palm pressing", "full body, hips, back",
                 "flexibility, energy", "none (dry massage)", ("HED", "FSC")),
    ServiceSpec("HOT", "Hot Stone Therapy", "specialty", 3, (60, 90), "3500.00", 6, "Contemporary",
                 "Heated basalt stones glide over the body to melt deep tension.",
                 "stone placement, gliding strokes", "back, legs, palms",
                 "deep relaxation, muscle warmth", "warm jojoba oil", ("HTW", "BSC")),
    ServiceSpec("REF", "Reflexology", "therapeutic", 3, (30, 45, 60), "1200.00", 8, "Zone therapy",
                 "Pressure on reflex points of the feet linked to the whole body.",
                 "thumb walking, finger pressure", "feet, lower legs",
                 "relaxation, circulation", "peppermint foot balm", ("FSC", "HAN")),
    ServiceSpec("ABY", "Abhyanga", "wellness", 2, (60, 90), "2400.00", 9, "Ayurvedic",
                 "Warm medicated-oil massage from the Ayurvedic tradition, synchronised strokes.",
                 "long strokes, circular joint work", "full body, scalp",
                 "nourished skin, calm mind, detox", "sesame-based herbal taila", ("HED", "HTW")),
    ServiceSpec("SHI", "Shiatsu", "therapeutic", 4, (60, 90), "2900.00", 4, "Japanese",
                 "Finger and palm pressure along the body's meridians.",
                 "thumb pressure, palming, stretching", "meridians, back, neck",
                 "energy balance, pain relief", "none (dry massage)", ("HED",)),
    ServiceSpec("SPT", "Sports Massage", "therapeutic", 5, (60, 90), "3000.00", 6, "Clinical",
                 "Targeted work for athletes before or after training and events.",
                 "PNF stretching, deep friction, compression", "legs, shoulders, back",
                 "faster recovery, injury prevention", "arnica gel, grapeseed oil", ("CUP", "FSC")),
    ServiceSpec("PRE", "Prenatal Massage", "specialty", 1, (60,), "2700.00", 2, "Side-lying",
                 "Gentle side-lying massage for expectant mothers after the first trimester.",
                 "light effleurage, supported positioning", "back, hips, legs, feet",
                 "reduced swelling, better sleep", "unscented coconut oil", ("FSC",)),
    ServiceSpec("CPL", "Couples Massage", "couples", 2, (60, 90), "4500.00", 4, "Side by side",
                 "Two therapists, two tables, one room: a shared relaxation massage.",
                 "Swedish strokes, aromatherapy", "full body",
                 "shared relaxation", "choice of aroma blends", ("HTW", "EYE")),
    ServiceSpec("LOM", "Lomi Lomi", "specialty", 3, (60, 90), "3200.00", 3, "Hawaiian",
                 "Flowing forearm strokes inspired by Hawaiian healing traditions.",
                 "forearm gliding, rhythmic strokes", "full body",
                 "deep relaxation", "macadamia and kukui nut oil", ("BSC",)),
    ServiceSpec("HSM", "Head, Neck and Shoulder Massage", "wellness", 3, (30, 45, 60), "1200.00", 8,
                 "Indian head massage", "Quick relief for desk-bound necks and tired shoulders.",
                 "champissage, kneading", "head, neck, shoulders",
                 "tension headache relief", "bhringraj hair oil", ("HTW", "EYE")),
    ServiceSpec("SHR", "Shirodhara", "wellness", 1, (45, 60), "3800.00", 3, "Ayurvedic",
                 "A steady stream of warm herbal oil poured over the forehead.",
                 "oil pouring (dhara), scalp massage", "forehead, scalp",
                 "deep calm, insomnia relief", "ksheerabala taila", ("HED",)),
    ServiceSpec("POT", "Potli Massage", "specialty", 3, (60, 90), "3300.00", 3, "Kerala",
                 "Warm herbal compress bundles pressed and rolled over the body.",
                 "pinda sweda compress, rhythmic pressing", "joints, back, legs",
                 "joint ease, inflammation relief", "herbal potli with medicated oil", ("HTW",)),
)
SERVICE_INDEX = {s.code: i for i, s in enumerate(SERVICES)}
CONTRAINDICATIONS = {
    "HOT": "Diabetes with neuropathy, pregnancy, high blood pressure, sensitive skin",
    "PRE": "First trimester, high-risk pregnancy without doctor's approval",
    "SHR": "Recent head injury, sinus infection, fever",
}
ROOM_SETUPS = {
    "THA": "Floor mat, loose cotton clothing provided",
    "CPL": "Twin tables in a shared suite",
    "HOT": "Heated table, stone heater at 50-55 °C",
    "SHR": "Dhara stand and droni table",
}

# (code, name, description, minutes, price)
ADDONS = (
    ("HTW", "Hot Towel Wrap", "Steamed towels to finish the session", 10, "250.00"),
    ("FSC", "Foot Scrub", "Exfoliating scrub for tired feet", 20, "450.00"),
    ("HED", "Head Massage", "Ten extra minutes of scalp massage", 15, "350.00"),
    ("BSC", "Body Scrub", "Coffee or walnut body polish", 30, "900.00"),
    ("FCL", "Express Facial", "Cleanse, tone and hydrate", 30, "800.00"),
    ("CUP", "Cupping", "Silicone cup therapy on the back", 20, "600.00"),
    ("EYE", "Eye Mask Therapy", "Cooling gel mask for tired eyes", 10, "200.00"),
    ("HAN", "Hand Reflexology", "Pressure-point work on the hands", 15, "300.00"),
)
# (name, description, [(service code, minutes)], discount %)
PACKAGES = (
    ("Ayurvedic Renewal", "Abhyanga followed by Shirodhara", [("ABY", 60), ("SHR", 45)], "15.00"),
    ("Stress Buster", "Swedish massage with a head, neck and shoulder finish",
     [("SWD", 60), ("HSM", 30)], "10.00"),
    ("Athlete Recovery", "Sports massage plus reflexology", [("SPT", 60), ("REF", 30)], "12.00"),
    ("Royal Thai Retreat", "Thai massage and hot stone therapy", [("THA", 90), ("HOT", 60)], "18.00"),
)

BUSINESS_PREFIXES = ("Serenity", "Tattva", "Ananda", "Sukham", "Nirvana", "Kaya", "Prana", "Aura",
                     "Lotus", "Vedic", "Moksha", "Shanti", "Zen", "Amara", "Soma", "Jiva", "Tulsi",
                     "Rasa", "Sattva", "Ojas", "Vaayu", "Kairali", "Sparsh", "Aarogya")
BUSINESS_TYPES = (("spa", 45), ("wellness_center", 15), ("salon", 15), ("home_service", 15), ("hotel_spa", 10))
BUSINESS_SUFFIX = {"spa": "Spa", "wellness_center": "Wellness", "salon": "Salon & Spa",
                   "home_service": "At Home", "hotel_spa": "Hotel Spa"}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# (department, user_profiles role, headcount at scale 1.0, designations: head first)
DEPARTMENTS = (
    ("finance", "finance_department", 6,
     ("Head of Finance", "Finance Manager", "Senior Financial Analyst", "Financial Analyst", "Finance Executive")),
    ("accounts", "accounts_department", 8,
     ("Accounts Manager", "Senior Accountant", "Accountant", "Accounts Executive", "Accounts Assistant")),
    ("hr", "hr_department", 6,
     ("HR Manager", "HR Business Partner", "Talent Acquisition Specialist", "HR Executive", "Payroll Executive")),
    ("marketing", "marketing_department", 9,
     ("Head of Marketing", "Brand Manager", "Performance Marketing Manager", "CRM Specialist",
      "Content Strategist", "Marketing Executive")),
    ("operations", "fo_department", 10,
     ("Head of Operations", "Operations Manager", "Vendor Onboarding Manager", "City Operations Lead",
      "Operations Executive")),
    ("customer_care", "customer_care", 12,
     ("Customer Care Manager", "Team Lead - Support", "Senior Support Associate", "Support Associate")),
    ("it", "it_department", 6,
     ("Head of Technology", "Engineering Manager", "Backend Engineer", "DevOps Engineer", "IT Support Engineer")),
    ("legal", "legal_department", 2, ("Legal Counsel", "Legal Associate")),
)
HEAD_OFFICE = {"latitude": 18.9986, "longitude": 72.8259,
               "address": "OMBARO House, Senapati Bapat Marg, Lower Parel, Mumbai 400013"}
TECH_OFFICE = {"latitude": 12.9352, "longitude": 77.6245,
               "address": "OMBARO Tech, 80 Feet Road, Koramangala, Bengaluru 560034"}
# Fixed-date national / gazetted holidays; attendance on these is 'holiday'.
HOLIDAYS = {(1, 26), (8, 15), (10, 2), (12, 25)}

CUSTOMER_CANCEL_REASONS = ("Change of plans", "Booked the wrong time slot", "Feeling unwell",
                           "Found a slot closer to home", "Travelling out of town", "Emergency at work")
VENDOR_CANCEL_REASONS = ("Therapist unavailable", "Power outage at the spa", "Overbooked slot",
                         "Maintenance in treatment room")
SPECIAL_INSTRUCTIONS = ("Please use light pressure on the lower back", "Allergic to nut-based oils",
                        "Prefer a female therapist", "Please bring extra towels",
                        "Call on arrival, the building has no lift", "Avoid strong fragrances",
                        "Recovering from a shoulder strain, go easy there")
REVIEW_TEXTS = {
    5: (("Absolutely relaxing", "{therapist} was wonderful. The {service} was exactly what I needed."),
        ("Best massage in {city}", "Spotless room, great pressure, and right on time. Booking again."),
        ("Pure bliss", "Walked out feeling ten years younger. Thank you {therapist}!")),
    4: (("Very good experience", "Good pressure and a clean room. A small delay at the start."),
        ("Would recommend", "{therapist} listened to what I wanted. Music was a bit loud.")),
    3: (("Decent", "The {service} was fine but the room could have been quieter."),
        ("Average", "Nothing wrong, nothing special.")),
    2: (("Below expectations", "Started 20 minutes late and the session felt rushed."),),
    1: (("Disappointed", "Not the experience I paid for. I have raised a ticket with support."),),
}
TICKET_SUBJECTS = {
    "booking_issue": ("Unable to reschedule my booking", "Therapist did not arrive on time",
                      "Booking shows the wrong date"),
    "payment_issue": ("Charged twice for one booking", "Refund not received yet",
                      "UPI payment failed but money debited"),
    "service_quality": ("Session was cut short", "Room was not clean", "Pressure was too hard despite request"),
    "technical": ("App crashes at checkout", "OTP not received", "Cannot add a new address"),
    "feedback": ("Loved the new Potli massage", "Suggestion: add evening home slots"),
    "other": ("How do I change my registered mobile number?", "Question about membership tiers"),
}


@dataclass
class Vendor:
    id: uuid.UUID
    city: str
    business_type: str
    address: dict[str, Any]
    hours: dict[int, tuple[int, int] | None]  # python weekday -> (open, close) minutes, None = closed
    offered: list[str]
    bookable: bool
    created_at: dt.datetime
    therapists: list[Therapist] = field(default_factory=list)
    services: list[str] = field(default_factory=list)  # codes active therapists can actually deliver


@dataclass
class Therapist:
    id: uuid.UUID
    vendor: Vendor
    name: str
    gender: str
    codes: list[str]
    status: str  # active / on_leave / inactive / terminated
    shifts: dict[int, tuple[int, int, int, int]]  # python weekday -> (start, end, break start, break end)
    leave_days: set[dt.date] = field(default_factory=set)


@dataclass
class Customer:
    id: uuid.UUID
    city: str
    created_at: dt.datetime
    addresses: list[dict[str, Any]]


@dataclass
class Employee:
    id: uuid.UUID
    department: str
    manager: uuid.UUID | None
    joining: dt.date
    last_day: dt.date | None
    office: dict[str, Any]


@dataclass
class Promotion:
    id: uuid.UUID
    code: str
    kind: str
    value: Decimal
    min_amount: Decimal
    max_discount: Decimal | None
    valid_from: dt.datetime
    valid_to: dt.datetime
    per_customer: int


