"""Demo data behind `ombaro seed --demo`: a realistic, deterministic Indian spa marketplace.

Everything is built in memory first (so aggregates such as ratings, customer totals and
booking numbers agree with the rows they summarise), then inserted table by table in
batches with Core `insert(table)` executemany. The caller owns the transaction: nothing
here commits.

Determinism: every section draws from its own `random.Random(f"{seed}:{section}")`, ids
are `UUID(int=rng.getrandbits(128))` and every timestamp is derived from `today`, so the
same (seed, today, scale) always yields identical rows, and changing one section does not
shift the random stream of the others.

Time: business dates and clock times (booking_date/booking_time, operating hours, shifts)
are in the platform zone (Asia/Kolkata); timestamps are timezone-aware UTC. The data set
behaves as if it was taken at 23:00 IST on `today` (`_Builder.anchor`): bookings on
`today` and before are history (completed or cancelled), the next two days are upcoming.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import uuid
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ombaro.config import load_data_keys
from ombaro.identity import crypto

__all__ = ["seed_demo"]

PLATFORM_ZONE = ZoneInfo("Asia/Kolkata")
UTC = dt.UTC
PAISE = Decimal("0.01")
GST_RATE = Decimal("0.18")
HISTORY_DAYS = 90
UPCOMING_DAYS = 2
BATCH_ROWS = 2000
# Auth comes in a later issue; '!' is the conventional "no usable password" marker (never a valid hash).
UNUSABLE_PASSWORD = "!"

Row = dict[str, Any]


def money(value: Decimal | int | str) -> Decimal:
    """Round to the paise, half-up: the one place demo amounts are rounded."""
    return Decimal(value).quantize(PAISE, rounding=ROUND_HALF_UP)


def item_price(base_price_60min: Decimal, duration: int) -> Decimal:
    return money(base_price_60min * duration / 60)


def gst_on(taxable: Decimal) -> Decimal:
    return money(taxable * GST_RATE)


# --------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _City:
    name: str
    state: str
    gst_state_code: str
    latitude: float
    longitude: float
    language: str
    localities: tuple[tuple[str, str], ...]  # (locality, pincode)


CITIES: dict[str, _City] = {
    c.name: c
    for c in (
        _City("Mumbai", "Maharashtra", "27", 19.0760, 72.8777, "Marathi", (
            ("Colaba", "400005"), ("Lower Parel", "400013"), ("Worli", "400018"),
            ("Bandra West", "400050"), ("Juhu", "400049"), ("Andheri West", "400053"),
            ("Powai", "400076"), ("Goregaon East", "400063"), ("Malad West", "400064"),
            ("Chembur", "400071"))),
        _City("Delhi", "Delhi", "07", 28.6139, 77.2090, "Punjabi", (
            ("Connaught Place", "110001"), ("Karol Bagh", "110005"), ("Lajpat Nagar", "110024"),
            ("Greater Kailash", "110048"), ("Hauz Khas", "110016"), ("Saket", "110017"),
            ("Vasant Kunj", "110070"), ("Rajouri Garden", "110027"), ("Janakpuri", "110058"),
            ("Dwarka", "110075"))),
        _City("Bengaluru", "Karnataka", "29", 12.9716, 77.5946, "Kannada", (
            ("Indiranagar", "560038"), ("Koramangala", "560034"), ("HSR Layout", "560102"),
            ("Jayanagar", "560041"), ("JP Nagar", "560078"), ("Malleshwaram", "560003"),
            ("Hebbal", "560024"), ("Whitefield", "560066"), ("Marathahalli", "560037"),
            ("Electronic City", "560100"))),
        _City("Hyderabad", "Telangana", "36", 17.3850, 78.4867, "Telugu", (
            ("Banjara Hills", "500034"), ("Jubilee Hills", "500033"), ("Begumpet", "500016"),
            ("Ameerpet", "500073"), ("Secunderabad", "500003"), ("Madhapur", "500081"),
            ("Gachibowli", "500032"), ("Kondapur", "500084"), ("Kukatpally", "500072"),
            ("HITEC City", "500081"))),
        _City("Chennai", "Tamil Nadu", "33", 13.0827, 80.2707, "Tamil", (
            ("T. Nagar", "600017"), ("Nungambakkam", "600034"), ("Alwarpet", "600018"),
            ("Mylapore", "600004"), ("Adyar", "600020"), ("Besant Nagar", "600090"),
            ("Velachery", "600042"), ("Anna Nagar", "600040"), ("Porur", "600116"),
            ("Thoraipakkam", "600097"))),
        _City("Pune", "Maharashtra", "27", 18.5204, 73.8567, "Marathi", (
            ("Camp", "411001"), ("Koregaon Park", "411001"), ("Kalyani Nagar", "411006"),
            ("Viman Nagar", "411014"), ("Aundh", "411007"), ("Baner", "411045"),
            ("Kothrud", "411038"), ("Hinjewadi", "411057"), ("Wakad", "411057"),
            ("Magarpatta", "411028"))),
        _City("Kolkata", "West Bengal", "19", 22.5726, 88.3639, "Bengali", (
            ("Park Street", "700016"), ("Ballygunge", "700019"), ("Alipore", "700027"),
            ("Gariahat", "700019"), ("Tollygunge", "700033"), ("Behala", "700034"),
            ("Salt Lake", "700091"), ("New Town", "700156"), ("Rajarhat", "700135"),
            ("Dum Dum", "700028"))),
        _City("Jaipur", "Rajasthan", "08", 26.9124, 75.7873, "Rajasthani", (
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
class _ServiceSpec:
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


SERVICES: tuple[_ServiceSpec, ...] = (
    _ServiceSpec("SWD", "Swedish Massage", "relaxation", 2, (60, 90, 120), "1800.00", 22, "European",
                 "Long flowing strokes that ease muscle tension and improve circulation.",
                 "effleurage, petrissage, friction, tapotement", "full body",
                 "relaxation, better sleep, improved circulation", "sweet almond oil", ("HTW", "HED")),
    _ServiceSpec("ARO", "Aromatherapy Massage", "relaxation", 2, (60, 90, 120), "2200.00", 20, "Holistic",
                 "Gentle massage with essential oils chosen for calm or energy.",
                 "light effleurage, acupressure points", "full body, back, shoulders",
                 "stress relief, mood uplift", "lavender, eucalyptus, lemongrass blends", ("HTW", "EYE")),
    _ServiceSpec("DPT", "Deep Tissue Massage", "therapeutic", 4, (60, 90, 120), "2800.00", 16, "Clinical",
                 "Slow, firm pressure on deeper muscle layers and fascia.",
                 "stripping, cross-fibre friction, trigger point work", "back, neck, shoulders, legs",
                 "chronic pain relief, mobility", "unscented grapeseed oil", ("CUP", "HTW")),
    _ServiceSpec("BAL", "Balinese Massage", "relaxation", 3, (60, 90), "2600.00", 8, "Indonesian",
                 "Traditional Balinese blend of stretches, acupressure and aromatherapy.",
                 "skin rolling, kneading, acupressure", "full body",
                 "relaxation, energy flow", "frangipani and coconut oil", ("BSC", "HTW")),
    _ServiceSpec("THA", "Thai Massage", "therapeutic", 4, (60, 90, 120), "2500.00", 10, "Thai",
                 "Assisted yoga-like stretches on a floor mat, fully clothed.",
                 "compression, passive stretching, palm pressing", "full body, hips, back",
                 "flexibility, energy", "none (dry massage)", ("HED", "FSC")),
    _ServiceSpec("HOT", "Hot Stone Therapy", "specialty", 3, (60, 90), "3500.00", 6, "Contemporary",
                 "Heated basalt stones glide over the body to melt deep tension.",
                 "stone placement, gliding strokes", "back, legs, palms",
                 "deep relaxation, muscle warmth", "warm jojoba oil", ("HTW", "BSC")),
    _ServiceSpec("REF", "Reflexology", "therapeutic", 3, (30, 45, 60), "1200.00", 8, "Zone therapy",
                 "Pressure on reflex points of the feet linked to the whole body.",
                 "thumb walking, finger pressure", "feet, lower legs",
                 "relaxation, circulation", "peppermint foot balm", ("FSC", "HAN")),
    _ServiceSpec("ABY", "Abhyanga", "wellness", 2, (60, 90), "2400.00", 9, "Ayurvedic",
                 "Warm medicated-oil massage from the Ayurvedic tradition, synchronised strokes.",
                 "long strokes, circular joint work", "full body, scalp",
                 "nourished skin, calm mind, detox", "sesame-based herbal taila", ("HED", "HTW")),
    _ServiceSpec("SHI", "Shiatsu", "therapeutic", 4, (60, 90), "2900.00", 4, "Japanese",
                 "Finger and palm pressure along the body's meridians.",
                 "thumb pressure, palming, stretching", "meridians, back, neck",
                 "energy balance, pain relief", "none (dry massage)", ("HED",)),
    _ServiceSpec("SPT", "Sports Massage", "therapeutic", 5, (60, 90), "3000.00", 6, "Clinical",
                 "Targeted work for athletes before or after training and events.",
                 "PNF stretching, deep friction, compression", "legs, shoulders, back",
                 "faster recovery, injury prevention", "arnica gel, grapeseed oil", ("CUP", "FSC")),
    _ServiceSpec("PRE", "Prenatal Massage", "specialty", 1, (60,), "2700.00", 2, "Side-lying",
                 "Gentle side-lying massage for expectant mothers after the first trimester.",
                 "light effleurage, supported positioning", "back, hips, legs, feet",
                 "reduced swelling, better sleep", "unscented coconut oil", ("FSC",)),
    _ServiceSpec("CPL", "Couples Massage", "couples", 2, (60, 90), "4500.00", 4, "Side by side",
                 "Two therapists, two tables, one room: a shared relaxation massage.",
                 "Swedish strokes, aromatherapy", "full body",
                 "shared relaxation", "choice of aroma blends", ("HTW", "EYE")),
    _ServiceSpec("LOM", "Lomi Lomi", "specialty", 3, (60, 90), "3200.00", 3, "Hawaiian",
                 "Flowing forearm strokes inspired by Hawaiian healing traditions.",
                 "forearm gliding, rhythmic strokes", "full body",
                 "deep relaxation", "macadamia and kukui nut oil", ("BSC",)),
    _ServiceSpec("HSM", "Head, Neck and Shoulder Massage", "wellness", 3, (30, 45, 60), "1200.00", 8,
                 "Indian head massage", "Quick relief for desk-bound necks and tired shoulders.",
                 "champissage, kneading", "head, neck, shoulders",
                 "tension headache relief", "bhringraj hair oil", ("HTW", "EYE")),
    _ServiceSpec("SHR", "Shirodhara", "wellness", 1, (45, 60), "3800.00", 3, "Ayurvedic",
                 "A steady stream of warm herbal oil poured over the forehead.",
                 "oil pouring (dhara), scalp massage", "forehead, scalp",
                 "deep calm, insomnia relief", "ksheerabala taila", ("HED",)),
    _ServiceSpec("POT", "Potli Massage", "specialty", 3, (60, 90), "3300.00", 3, "Kerala",
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


# --------------------------------------------------------------------------------------
# In-memory model of what is generated (only what later sections need)
# --------------------------------------------------------------------------------------


@dataclass
class _Vendor:
    id: uuid.UUID
    city: str
    business_type: str
    address: dict[str, Any]
    hours: dict[int, tuple[int, int] | None]  # python weekday -> (open, close) minutes, None = closed
    offered: list[str]
    bookable: bool
    created_at: dt.datetime
    therapists: list[_Therapist] = field(default_factory=list)
    services: list[str] = field(default_factory=list)  # codes active therapists can actually deliver


@dataclass
class _Therapist:
    id: uuid.UUID
    vendor: _Vendor
    name: str
    gender: str
    codes: list[str]
    status: str  # active / on_leave / inactive / terminated
    shifts: dict[int, tuple[int, int, int, int]]  # python weekday -> (start, end, break start, break end)
    leave_days: set[dt.date] = field(default_factory=set)


@dataclass
class _Customer:
    id: uuid.UUID
    city: str
    created_at: dt.datetime
    addresses: list[dict[str, Any]]


@dataclass
class _Employee:
    id: uuid.UUID
    department: str
    manager: uuid.UUID | None
    joining: dt.date
    last_day: dt.date | None
    office: dict[str, Any]


@dataclass
class _Promotion:
    id: uuid.UUID
    code: str
    kind: str
    value: Decimal
    min_amount: Decimal
    max_discount: Decimal | None
    valid_from: dt.datetime
    valid_to: dt.datetime
    per_customer: int


# --------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------


def _uid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _clock(minutes: int) -> dt.time:
    return dt.time(minutes // 60, minutes % 60)


def _ascii(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


class _Builder:
    def __init__(self, seed: int, today: dt.date, scale: float) -> None:
        self.seed = seed
        self.today = today
        self.scale = scale
        self.anchor = self.at(today, 23 * 60)
        self.first_day = today - dt.timedelta(days=HISTORY_DAYS - 1)
        self.rows: dict[str, list[Row]] = defaultdict(list)
        self._emails: set[str] = set()
        self._mobiles: set[str] = set()
        self._codes: set[str] = set()
        self.services: dict[str, Row] = {}
        self.addons: list[Row] = []
        self.vendors: list[_Vendor] = []
        self.customers: list[_Customer] = []
        self.employees: list[_Employee] = []
        self.promotions: list[_Promotion] = []
        # One draft per booking: its row plus items, assignments, payments and the plan behind them.
        self.bookings: list[Row] = []

    # -- helpers ---------------------------------------------------------------------

    def rng(self, section: str) -> random.Random:
        # A string seed is hashed with SHA-512 by random.Random: stable across processes.
        return random.Random(f"{self.seed}:{section}")

    def account_number(self, owner: uuid.UUID, last4: int) -> str:
        """A 12-digit account number (the bank file takes 9 to 18 digits) ending in `last4`; the
        leading digits come from the owner's own stream, so the section's stream does not move."""
        return f"{self.rng(f'account:{owner}').randrange(10**7, 10**8)}{last4:04d}"

    def count(self, at_full_scale: int, minimum: int) -> int:
        return max(minimum, round(at_full_scale * self.scale))

    @staticmethod
    def at(day: dt.date, minutes: int) -> dt.datetime:
        """A platform-zone wall clock (minutes after midnight on `day`) as a UTC instant."""
        local = dt.datetime.combine(day, dt.time(0, 0), tzinfo=PLATFORM_ZONE) + dt.timedelta(minutes=minutes)
        return local.astimezone(UTC)

    def days_ago(self, rng: random.Random, low: int, high: int) -> dt.datetime:
        """A UTC instant between `high` and `low` days before the anchor, whole seconds."""
        seconds = rng.randint(low * 86400, high * 86400)
        return self.anchor - dt.timedelta(seconds=seconds)

    def mobile(self, rng: random.Random) -> str:
        while True:
            number = f"+91{rng.choice('6789')}{rng.randrange(10**9):09d}"
            if number not in self._mobiles:
                self._mobiles.add(number)
                return number

    def email(self, local: str, domain: str) -> str:
        candidate, n = f"{local}@{domain}", 1
        while candidate in self._emails:
            n += 1
            candidate = f"{local}{n}@{domain}"
        self._emails.add(candidate)
        return candidate

    def unique_code(self, rng: random.Random, prefix: str, length: int) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone
        while True:
            code = prefix + "".join(rng.choice(alphabet) for _ in range(length))
            if code not in self._codes:
                self._codes.add(code)
                return code

    def person(self, rng: random.Random, *, female: bool, surnames: Sequence[str] = SURNAMES) -> str:
        return f"{rng.choice(FEMALE_FIRST if female else MALE_FIRST)} {rng.choice(surnames)}"

    def point_near(self, rng: random.Random, city: str, spread: float) -> tuple[Decimal, Decimal]:
        c = CITIES[city]
        lat = c.latitude + rng.uniform(-spread, spread)
        lon = c.longitude + rng.uniform(-spread, spread)
        return Decimal(f"{lat:.6f}"), Decimal(f"{lon:.6f}")

    def street_address(self, rng: random.Random, city: str) -> dict[str, Any]:
        locality, pincode = rng.choice(CITIES[city].localities)
        lat, lon = self.point_near(rng, city, 0.12)
        return {
            "line1": f"{rng.choice(('Flat', 'Flat', 'House No.', 'Apt'))} "
                     f"{rng.randint(1, 30)}{rng.randint(1, 12):02d}, {rng.choice(BUILDINGS)}",
            "line2": f"{rng.choice(STREETS)}, {locality}",
            "landmark": rng.choice(LANDMARKS),
            "locality": locality,
            "city": city,
            "state": CITIES[city].state,
            "pincode": pincode,
            "latitude": lat,
            "longitude": lon,
        }

    def add_user(self, rng: random.Random, *, user_id: uuid.UUID, email: str, name: str, mobile: str,
                 role: str, gender: str | None, created_at: dt.datetime, address: dict[str, Any] | None,
                 department: str | None = None, dob: dt.date | None = None, status: str = "active",
                 confirmed: bool = True) -> None:
        """auth.users + user_profiles: every person who can sign in has both."""
        app_meta: dict[str, Any] = {"provider": "email", "providers": ["email"], "role": role}
        if department:
            app_meta["department"] = department
        last_seen = min(self.anchor, created_at + dt.timedelta(seconds=rng.randint(0, 400 * 86400)))
        self.rows["auth.users"].append({
            "id": user_id,
            "email": email,
            "encrypted_password": UNUSABLE_PASSWORD,
            "email_confirmed_at": created_at + dt.timedelta(minutes=rng.randint(1, 90)) if confirmed else None,
            "last_sign_in_at": last_seen if confirmed else None,
            "raw_app_meta_data": app_meta,
            "raw_user_meta_data": {"name": name, "mobile": mobile},
            "created_at": created_at,
            "updated_at": last_seen,
        })
        self.rows["user_profiles"].append({
            "id": user_id,
            "name": name,
            "mobile": mobile,
            "gender": gender,
            "date_of_birth": dob,
            "role": role,
            "status": status,
            "address": address,
            "preferences": {"language": "en", "theme": "light"},
            "created_at": created_at,
            "updated_at": created_at,
        })

    # -- catalogue -------------------------------------------------------------------

    def build_catalogue(self) -> None:
        rng = self.rng("catalogue")
        created = self.anchor - dt.timedelta(days=1000)
        for spec in SERVICES:
            row = {
                "id": _uid(rng), "code": spec.code, "name": spec.name, "category": spec.category,
                "description": spec.description, "style": spec.style, "pressure_level": spec.pressure,
                "techniques": spec.techniques, "focus_areas": spec.focus_areas,
                "primary_benefits": spec.benefits,
                "contraindications": CONTRAINDICATIONS.get(
                    spec.code, "Fever, open wounds, skin infections, recent surgery"),
                "oils_products": spec.oils,
                "room_setup": ROOM_SETUPS.get(spec.code, "Dim lighting, heated table, soft instrumental music"),
                "recommended_addons": list(spec.addons), "duration_options": list(spec.durations),
                "base_price_60min": Decimal(spec.price), "is_active": True,
                "created_at": created, "updated_at": created,
            }
            self.rows["services"].append(row)
            self.services[spec.code] = row
        for code, name, description, minutes, price in ADDONS:
            self.addons.append({
                "id": _uid(rng), "code": code, "name": name, "description": description, "duration": minutes,
                "price": Decimal(price), "is_active": True, "created_at": created, "updated_at": created,
            })
        self.rows["addon_services"] = self.addons
        for name, description, parts, discount in PACKAGES:
            full = sum(item_price(self.services[c]["base_price_60min"], m) for c, m in parts)
            self.rows["service_packages"].append({
                "id": _uid(rng), "name": name, "description": description,
                "service_ids": [self.services[c]["id"] for c, _ in parts],
                "total_duration": sum(m for _, m in parts),
                "package_price": money(full * (100 - Decimal(discount)) / 100),
                "discount_percentage": Decimal(discount), "is_active": True,
                "created_at": created, "updated_at": created,
            })

    # -- employees -------------------------------------------------------------------

    def build_employees(self) -> None:
        rng = self.rng("employees")
        ceo = _uid(rng)
        # (department, role, designation, index within department); the head of each comes first.
        people: list[tuple[str, str, str, int]] = [("management", "directors", "Chief Executive Officer", 0)]
        for dept, role, headcount, designations in DEPARTMENTS:
            for i in range(self.count(headcount, 1)):
                if i < 2:
                    designation = designations[min(i, len(designations) - 1)]
                else:
                    designation = rng.choice(designations[2:] or designations[1:])
                people.append((dept, role, designation, i))
        heads: dict[str, uuid.UUID] = {}
        for number, (dept, role, designation, index) in enumerate(people, start=1):
            emp_id = ceo if dept == "management" else _uid(rng)
            if index == 0 and dept != "management":
                heads[dept] = emp_id
            manager = None if dept == "management" else (ceo if index == 0 else heads[dept])
            female = rng.random() < 0.45
            name = self.person(rng, female=female)
            first, last = name.split(" ", 1)
            email = self.email(f"{_ascii(first)}.{_ascii(last)}", "ombaro.in")
            mobile = self.mobile(rng)
            if index == 0:
                joining = self.today - dt.timedelta(days=rng.randint(700, 1800))
            elif rng.random() < 0.08:  # a few joined during the window: attendance starts on joining
                joining = self.today - dt.timedelta(days=rng.randint(10, HISTORY_DAYS - 5))
            else:
                joining = self.today - dt.timedelta(days=rng.randint(120, 1500))
            probation_days = 180 if index == 0 else 90
            probation_end = joining + dt.timedelta(days=probation_days)
            confirmed = probation_end if probation_end <= self.today else None
            employee_type = "full_time" if index == 0 else _weighted(
                rng, (("full_time", 85), ("contract", 8), ("part_time", 4), ("intern", 3)))
            # One person in customer care has resigned recently: attendance stops on the last working day.
            resigned = dept == "customer_care" and index == 3
            resignation = self.today - dt.timedelta(days=50) if resigned else None
            last_day = self.today - dt.timedelta(days=20) if resigned else None
            office = TECH_OFFICE if dept == "it" else HEAD_OFFICE
            city = "Bengaluru" if dept == "it" else "Mumbai"
            home = self.street_address(rng, city)
            address = {"street": f"{home['line1']}, {home['line2']}", "city": city, "state": home["state"],
                       "pincode": home["pincode"], "country": "India"}
            created_at = self.at(joining, 9 * 60 + 30)
            dob = self.today - dt.timedelta(days=rng.randint(23 * 365, 55 * 365))
            self.add_user(rng, user_id=emp_id, email=email, name=name, mobile=mobile, role=role,
                          gender="female" if female else "male", created_at=created_at, address=address,
                          department=dept, dob=dob)
            bank, ifsc = rng.choice(BANKS)
            account = self.account_number(emp_id, rng.randrange(10000))
            self.rows["employees"].append({
                "id": emp_id, "employee_code": f"EMP{number:04d}", "name": name, "email": email,
                "mobile": mobile, "gender": "female" if female else "male", "date_of_birth": dob,
                "profile_photo": None, "department": dept, "designation": designation,
                "employee_type": employee_type, "reporting_manager": manager, "joining_date": joining,
                "probation_end_date": probation_end, "confirmation_date": confirmed,
                "resignation_date": resignation, "last_working_date": last_day,
                "status": "inactive" if resigned else "active", "address": address,
                "emergency_contact": {"name": self.person(rng, female=not female), "relation": "spouse",
                                      "phone": self.mobile(rng), "alternate_phone": None},
                "bank_details": {"account_number": account,
                                 "ifsc": f"{ifsc}{rng.randrange(10**6):06d}", "bank_name": bank,
                                 "branch": home["locality"]},
                "documents": [{"type": "offer_letter", "url": f"https://files.ombaro.in/hr/{emp_id}/offer.pdf",
                               "uploaded_at": created_at.isoformat()}],
                "created_at": created_at, "updated_at": created_at,
            })
            self.employees.append(_Employee(emp_id, dept, manager, joining, last_day, office))
            self.add_compensation(emp_id, joining, head=index == 0, management=dept == "management",
                                  state="KA" if dept == "it" else "MH")

    def add_compensation(self, emp_id: uuid.UUID, joining: dt.date, *, head: bool, management: bool,
                         state: str) -> None:
        """A salary structure from the joining date (so HR's payroll preview has figures): basic by
        seniority, HRA 40% of basic, the usual fixed allowances; a few earn under the ESI ceiling."""
        rng = self.rng(f"compensation:{emp_id}")  # its own stream: other sections' rows do not move
        low, high = (250_000, 400_000) if management else (90_000, 150_000) if head else (9_000, 70_000)
        basic = Decimal(rng.randrange(low, high, 500))
        self.rows["compensation_structures"].append({
            "id": _uid(rng), "employee_id": emp_id, "effective_from": joining, "basic": basic,
            "hra": (basic * Decimal("0.40")).quantize(Decimal("1")), "transport": Decimal(1600),
            "medical": Decimal(1250), "special": Decimal(rng.randrange(0, 15_000, 500)), "other": Decimal(0),
            "pf_applicable": True, "esi_applicable": True, "pt_state": state, "overtime_eligible": not head,
            "notes": "demo", "created_at": self.at(joining, 9 * 60), "updated_at": self.at(joining, 9 * 60),
        })

    def staff_of(self, department: str) -> list[_Employee]:
        return [e for e in self.employees if e.department == department and e.last_day is None]

    # -- vendors and therapists ------------------------------------------------------

    def build_vendors(self) -> None:
        rng = self.rng("vendors")
        rounds = max(CITY_WEIGHTS.values())
        city_order = [c for r in range(rounds) for c, w in CITY_WEIGHTS.items() if w > r]
        n_vendors = self.count(40, 2)
        names: set[str] = set()
        for i in range(n_vendors):
            city = city_order[i % len(city_order)]
            c = CITIES[city]
            business_type = _weighted(rng, BUSINESS_TYPES)
            locality, pincode = rng.choice(c.localities)
            name = f"{rng.choice(BUSINESS_PREFIXES)} {BUSINESS_SUFFIX[business_type]}, {locality}"
            while name in names:
                name = f"{rng.choice(BUSINESS_PREFIXES)} {BUSINESS_SUFFIX[business_type]}, {locality}"
            names.add(name)
            # The first ten are always verified and active, so tiny scales still have bookable vendors.
            verification, status = "verified", "active"
            if i >= 10 and i % 11 == 10:
                verification = "pending"
            elif i >= 10 and i % 17 == 16:
                status = "suspended"
            elif i >= 10 and i % 23 == 22:
                verification, status = "rejected", "inactive"
            lat, lon = self.point_near(rng, city, 0.08)
            address = {
                "street": f"{rng.randint(1, 250)}, {rng.choice(STREETS)}, {locality}", "city": city,
                "state": c.state, "pincode": pincode, "country": "India",
                "latitude": float(lat), "longitude": float(lon), "landmark": rng.choice(LANDMARKS),
            }
            hours: dict[int, tuple[int, int] | None] = {}
            if business_type == "home_service":
                open_at, close_at = 7 * 60, 22 * 60
            else:
                open_at = rng.choice((8 * 60, 9 * 60, 9 * 60, 10 * 60))
                close_at = rng.choice((20 * 60, 21 * 60, 21 * 60, 22 * 60))
            closed_day = rng.choice((0, 1)) if rng.random() < 0.2 else None  # a few close on Mon or Tue
            for wd in range(7):
                if wd == closed_day:
                    hours[wd] = None
                elif wd >= 5 and business_type != "home_service":
                    hours[wd] = (open_at, min(close_at + 60, 22 * 60))  # weekends run later
                else:
                    hours[wd] = (open_at, close_at)
            operating_hours = {
                WEEKDAYS[wd]: ({"open": _hhmm(h[0]), "close": _hhmm(h[1]), "closed": False} if h
                               else {"open": "00:00", "close": "00:00", "closed": True})
                for wd, h in hours.items()
            }
            core = ["SWD", "ARO", "DPT"]
            extra = [s.code for s in SERVICES if s.code not in core]
            if business_type == "home_service":
                extra = [c for c in extra if c not in ("HOT", "SHR", "CPL", "POT")]  # need a treatment room
            offered = sorted(core + rng.sample(extra, rng.randint(min(4, len(extra)), min(11, len(extra)))),
                             key=SERVICE_INDEX.__getitem__)
            vendor_id = _uid(rng)
            created_at = self.days_ago(rng, 200, 1400)
            contact_female = rng.random() < 0.4
            contact = self.person(rng, female=contact_female)
            slug = _ascii(name.split(",")[0]) + _ascii(locality)[:6]
            email = self.email("owner", f"{slug}.in")
            mobile = self.mobile(rng)
            self.add_user(rng, user_id=vendor_id, email=email, name=contact, mobile=mobile, role="vendor",
                          gender="female" if contact_female else "male", created_at=created_at,
                          address={k: address[k] for k in ("street", "city", "state", "pincode", "country")})
            pan = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3)) + rng.choice("CF") \
                + _ascii(name)[0].upper() + f"{rng.randrange(10000):04d}" + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ")
            commission = Decimal(rng.choice(("10.00", "12.00", "12.50", "15.00", "15.00", "18.00", "20.00")))
            self.rows["vendors"].append({
                "id": vendor_id, "business_name": name, "business_type": business_type,
                "gst_number": f"{c.gst_state_code}{pan}1Z{rng.choice('0123456789ABCDEFGHJK')}",
                "pan_number": pan, "business_address": address, "contact_person": contact,
                "contact_mobile": mobile, "contact_email": email,
                "services_offered": [self.services[code]["id"] for code in offered],
                "operating_hours": operating_hours, "rating": Decimal("0.00"), "total_reviews": 0,
                "verification_status": verification,
                "verification_documents": [
                    {"type": "gst_certificate", "url": f"https://files.ombaro.in/vendors/{vendor_id}/gst.pdf"},
                    {"type": "trade_license", "url": f"https://files.ombaro.in/vendors/{vendor_id}/license.pdf"},
                ],
                "commission_rate": commission, "status": status,
                "created_at": created_at, "updated_at": created_at,
            })
            vendor = _Vendor(vendor_id, city, business_type, address, hours, offered,
                             verification == "verified" and status == "active", created_at)
            self.vendors.append(vendor)
            if rng.random() < 0.35:
                for role, perms in (("manager", ["bookings", "therapists", "reports"]),
                                    ("receptionist", ["bookings"])):
                    female = rng.random() < 0.6
                    staff_name = self.person(rng, female=female)
                    first, last = staff_name.split(" ", 1)
                    self.rows["vendor_staff"].append({
                        "id": _uid(rng), "vendor_id": vendor_id, "user_id": None, "name": staff_name,
                        "role": role, "mobile": self.mobile(rng),
                        "email": self.email(f"{_ascii(first)}.{_ascii(last)}", f"{slug}.in"),
                        "permissions": perms, "status": "active", "created_at": created_at,
                        "updated_at": created_at,
                    })

    def build_therapists(self) -> None:
        rng = self.rng("therapists")
        leave_rng = self.rng("therapist_leaves")
        for vendor in self.vendors:
            for _ in range(rng.randint(5, 15)):
                self._therapist(rng, vendor)
            active = [t for t in vendor.therapists if t.status == "active"]
            # Every offered service must be deliverable; couples massage needs two therapists.
            for code in vendor.offered:
                needed = 2 if self.services[code]["category"] == "couples" else 1
                have = sum(code in t.codes for t in active)
                others = [t for t in active if code not in t.codes]
                for t in rng.sample(others, min(len(others), max(0, needed - have))):
                    t.codes.append(code)
                    t.codes.sort(key=SERVICE_INDEX.__getitem__)
            vendor.services = [
                c for c in vendor.offered
                if sum(c in t.codes for t in active) >= (2 if self.services[c]["category"] == "couples" else 1)
            ]
        for row, t in zip(self.rows["therapists"], self._all_therapists(), strict=True):
            row["specialization"] = list(t.codes)
        self._therapist_leaves(leave_rng)
        self._therapist_locations(self.rng("therapist_locations"))

    def _all_therapists(self) -> list[_Therapist]:
        return [t for v in self.vendors for t in v.therapists]

    def _therapist(self, rng: random.Random, vendor: _Vendor) -> None:
        female = rng.random() < 0.65
        name = self.person(rng, female=female, surnames=THERAPIST_SURNAMES)
        first, last = name.split(" ", 1)
        therapist_id, user_id = _uid(rng), _uid(rng)
        email = self.email(f"{_ascii(first)}.{_ascii(last)}", "therapists.ombaro.in")
        mobile = self.mobile(rng)
        created_at = max(vendor.created_at, self.days_ago(rng, 100, 1300)) + dt.timedelta(days=rng.randint(0, 30))
        created_at = min(created_at, self.anchor - dt.timedelta(days=95))
        status = _weighted(rng, (("active", 94), ("inactive", 4), ("terminated", 2)))
        active = status == "active"
        weights = [(s, SERVICES[SERVICE_INDEX[s]].popularity) for s in vendor.offered]
        codes: list[str] = []
        for _ in range(rng.randint(3, 6)):
            code = _weighted(rng, weights)
            if code not in codes:
                codes.append(code)
        codes.sort(key=SERVICE_INDEX.__getitem__)
        city = CITIES[vendor.city]
        languages = ["Hindi", "English"] if rng.random() < 0.7 else ["Hindi"]
        if city.language not in languages and rng.random() < 0.6:
            languages.append(city.language)
        if rng.random() < 0.12:
            languages.append(rng.choice(("Nepali", "Manipuri", "Malayalam", "Assamese")))
        home = self.street_address(rng, vendor.city)
        address = {"street": f"{home['line1']}, {home['line2']}", "city": vendor.city, "state": city.state,
                   "pincode": home["pincode"], "country": "India"}
        dob = self.today - dt.timedelta(days=rng.randint(21 * 365, 45 * 365))
        experience = rng.randint(1, 15)
        bank, ifsc = rng.choice(BANKS)
        self.add_user(rng, user_id=user_id, email=email, name=name, mobile=mobile, role="therapist",
                      gender="female" if female else "male", created_at=created_at, address=address, dob=dob,
                      status="active" if active else "inactive")
        # Weekly shifts inside the vendor's hours: one weekly off, a 9-hour shift with a break in the middle.
        off_day = rng.randrange(7)
        shift_kind = rng.choice(("morning", "evening", "morning", "evening", "full"))
        shifts: dict[int, tuple[int, int, int, int]] = {}
        for wd, hours in vendor.hours.items():
            if hours is None or wd == off_day:
                continue
            open_at, close_at = hours
            if close_at - open_at <= 10 * 60 or shift_kind == "full":
                start, end = open_at, close_at
            elif shift_kind == "morning":
                start, end = open_at, open_at + 9 * 60
            else:
                start, end = close_at - 9 * 60, close_at
            break_start = start + ((end - start) // 2 // 30) * 30
            break_len = rng.choice((30, 60, 60))
            shifts[wd] = (start, end, break_start, break_start + break_len)
            self.rows["therapist_schedules"].append({
                "id": _uid(rng), "therapist_id": therapist_id, "day_of_week": (wd + 1) % 7,  # 0 = Sunday
                "start_time": _clock(start), "end_time": _clock(end), "is_available": True,
                "break_start": _clock(break_start), "break_end": _clock(break_start + break_len),
                "created_at": created_at, "updated_at": created_at,
            })
        account = self.account_number(therapist_id, rng.randrange(10000))
        self.rows["therapists"].append({
            "id": therapist_id, "user_id": user_id, "vendor_id": vendor.id, "name": name, "email": email,
            "mobile": mobile, "gender": "female" if female else "male", "date_of_birth": dob,
            "profile_image": None, "specialization": codes, "experience_years": experience,
            "certifications": [{"name": rng.choice(("Diploma in Spa Therapy", "CIDESCO Certificate",
                                                    "Ayurvedic Massage Certification", "ITEC Diploma")),
                                "issuer": rng.choice(("VLCC Institute", "Kerala Ayurveda Academy", "CIDESCO",
                                                      "Orient Spa Academy")),
                                "year": self.today.year - rng.randint(1, experience)}],
            "languages": languages, "rating": Decimal("0.00"), "total_reviews": 0, "total_services": 0,
            "status": status,
            "availability_status": _weighted(rng, (("available", 45), ("busy", 20), ("offline", 35)))
            if active else "offline",
            "emergency_contact": {"name": self.person(rng, female=rng.random() < 0.5),
                                  "relation": rng.choice(("mother", "father", "spouse", "sibling")),
                                  "phone": self.mobile(rng)},
            "address": address,
            "bank_details": {"account_number": account,
                             "ifsc": f"{ifsc}{rng.randrange(10**6):06d}", "bank_name": bank,
                             "branch": home["locality"]},
            "created_at": created_at, "updated_at": created_at,
        })
        vendor.therapists.append(_Therapist(therapist_id, vendor, name, "female" if female else "male",
                                            codes, status, shifts))

    def _therapist_leaves(self, rng: random.Random) -> None:
        therapists = self._all_therapists()
        rows = self.rows["therapists"]
        for t, row in zip(therapists, rows, strict=True):
            if t.status != "active" or rng.random() > 0.09:
                continue
            start = self.today + dt.timedelta(days=rng.randint(-75, 10))
            end = start + dt.timedelta(days=rng.choice((0, 0, 1, 2, 4)))
            applied = self.at(start - dt.timedelta(days=rng.randint(1, 10)), rng.randint(8 * 60, 20 * 60))
            applied = min(applied, self.anchor - dt.timedelta(hours=2))
            status = "pending" if start > self.today and rng.random() < 0.5 else _weighted(
                rng, (("approved", 85), ("rejected", 15)))
            leave_type = _weighted(rng, (("sick", 35), ("casual", 35), ("emergency", 15), ("annual", 15)))
            decided = applied + dt.timedelta(hours=rng.randint(1, 30))
            self.rows["therapist_leaves"].append({
                "id": _uid(rng), "therapist_id": t.id, "leave_type": leave_type, "start_date": start,
                "end_date": end,
                "reason": {"sick": "Fever and cold", "casual": "Family function",
                           "emergency": "Family emergency", "annual": "Visiting home town"}[leave_type],
                "status": status,
                "approved_by": t.vendor.id if status == "approved" else None,
                "approved_at": decided if status == "approved" else None,
                "rejection_reason": "Peak weekend, please pick other dates" if status == "rejected" else None,
                "documents": None, "created_at": applied,
                "updated_at": decided if status != "pending" else applied,
            })
            if status == "approved":
                day = start
                while day <= end:
                    t.leave_days.add(day)
                    day += dt.timedelta(days=1)
                if start <= self.today <= end:
                    t.status = "on_leave"  # on leave today: no upcoming work
                    row["status"] = "on_leave"
                    row["availability_status"] = "offline"

    def _therapist_locations(self, rng: random.Random) -> None:
        """A few GPS fixes in the last hour before the anchor for therapists who are out and about."""
        for t in self._all_therapists():
            if t.status != "active" or rng.random() > 0.4:
                continue
            lat = t.vendor.address["latitude"] + rng.uniform(-0.03, 0.03)
            lon = t.vendor.address["longitude"] + rng.uniform(-0.03, 0.03)
            moving = rng.random() < 0.5
            for k in range(6):
                if moving:
                    lat += rng.uniform(-0.002, 0.002)
                    lon += rng.uniform(-0.002, 0.002)
                self.rows["therapist_locations"].append({
                    "id": _uid(rng), "therapist_id": t.id,
                    "latitude": Decimal(f"{lat:.6f}"), "longitude": Decimal(f"{lon:.6f}"),
                    "accuracy": money(Decimal(rng.randint(300, 2500)) / 100),
                    "altitude": money(Decimal(rng.randint(500, 90000)) / 100),
                    "speed": money(Decimal(rng.randint(800, 3500)) / 100) if moving else Decimal("0.00"),
                    "heading": money(Decimal(rng.randint(0, 35999)) / 100),
                    "battery_level": max(5, 90 - 3 * k - rng.randint(0, 40)),
                    "is_moving": moving,
                    "timestamp": self.anchor - dt.timedelta(minutes=60 - 10 * k, seconds=rng.randint(0, 59)),
                })

    # -- customers -------------------------------------------------------------------

    def build_customers(self) -> None:
        rng = self.rng("customers")
        # Customers live where bookable vendors are, in proportion to their therapists.
        capacity: Counter[str] = Counter()
        for v in self.vendors:
            if v.bookable and v.services:
                capacity[v.city] += sum(t.status == "active" for t in v.therapists)
        cities = [(c, w) for c, w in capacity.items() if w > 0]
        n = self.count(3000, 30)
        drafts = []
        for _ in range(n):
            # Most signed up before the window; a third during it (their bookings start after sign-up).
            created = self.days_ago(rng, 1, HISTORY_DAYS - 1) if rng.random() < 0.3 \
                else self.days_ago(rng, HISTORY_DAYS + 5, 900)
            drafts.append((created, _uid(rng)))
        drafts.sort()  # referrers are always earlier customers, and inserted first
        tiers = (("silver", 60), ("gold", 25), ("platinum", 10), ("diamond", 5))
        for idx, (created, customer_id) in enumerate(drafts):
            city = _weighted(rng, cities)
            female = rng.random() < 0.58
            name = self.person(rng, female=female)
            first, last = name.split(" ", 1)
            domain = _weighted(rng, (("gmail.com", 70), ("yahoo.co.in", 10), ("outlook.com", 10),
                                     ("rediffmail.com", 5), ("hotmail.com", 5)))
            email = self.email(f"{_ascii(first)}.{_ascii(last)}", domain)
            mobile = self.mobile(rng)
            home = self.street_address(rng, city)
            address = {"street": f"{home['line1']}, {home['line2']}", "city": city, "state": home["state"],
                       "pincode": home["pincode"], "country": "India"}
            dob = self.today - dt.timedelta(days=rng.randint(20 * 365, 60 * 365))
            self.add_user(rng, user_id=customer_id, email=email, name=name, mobile=mobile, role="customer",
                          gender="female" if female else "male", created_at=created, address=address, dob=dob,
                          confirmed=rng.random() < 0.92)
            prefs = {"email": rng.random() > 0.08, "sms": rng.random() > 0.10,
                     "whatsapp": rng.random() < 0.30, "push": rng.random() > 0.15}
            referred_by = self.customers[rng.randrange(idx)].id if idx > 10 and rng.random() < 0.15 else None
            self.rows["customers"].append({
                "id": customer_id, "membership_tier": _weighted(rng, tiers),
                "membership_start_date": created.astimezone(PLATFORM_ZONE).date(),
                "loyalty_points": 0, "total_bookings": 0, "total_spent": Decimal("0.00"),
                "preferred_services": None, "preferred_therapists": None, "preferred_vendors": None,
                "communication_preferences": prefs,
                "allergies": [rng.choice(("nut oils", "lavender", "latex", "strong fragrances"))]
                if rng.random() < 0.05 else None,
                "medical_conditions": [rng.choice(("hypertension", "lower back pain", "diabetes", "migraine"))]
                if rng.random() < 0.04 else None,
                "special_requirements": None, "referral_code": self.unique_code(rng, "OMB", 6),
                "referred_by": referred_by, "referral_count": 0,
                "created_at": created, "updated_at": created,
            })
            addresses = [{**home, "type": "home", "label": "Home"}]
            if rng.random() < 0.35:
                work = self.street_address(rng, city)
                tower = rng.choice(("Tech Park", "Business Bay", "Trade Centre", "Corporate Tower"))
                work["line1"] = f"{rng.randint(1, 12)}th Floor, {tower}"
                addresses.append({**work, "type": "work", "label": "Office"})
            for k, a in enumerate(addresses):
                a["id"] = _uid(rng)
                self.rows["customer_addresses"].append({
                    "id": a["id"], "customer_id": customer_id, "address_type": a["type"], "label": a["label"],
                    "address_line1": a["line1"], "address_line2": a["line2"], "landmark": a["landmark"],
                    "city": city, "state": a["state"], "pincode": a["pincode"], "country": "India",
                    "latitude": a["latitude"], "longitude": a["longitude"], "is_default": k == 0,
                    "created_at": created, "updated_at": created,
                })
            self.customers.append(_Customer(customer_id, city, created, addresses))
        referrals = Counter(r["referred_by"] for r in self.rows["customers"] if r["referred_by"])
        for row in self.rows["customers"]:
            row["referral_count"] = referrals.get(row["id"], 0)

    # -- marketing -------------------------------------------------------------------

    def build_marketing(self) -> None:
        rng = self.rng("marketing")
        marketing = self.staff_of("marketing")
        head = marketing[0]
        # (code, name, type, value, min amount, max discount, valid from / to (days from today), per customer)
        specs = (
            ("WELCOME20", "Welcome offer: 20% off your first booking", "percentage", "20", "1000", "300",
             -365, 365, 1),
            ("FLAT250", "Flat Rs 250 off on bookings above Rs 2,000", "fixed_amount", "250", "2000", None,
             -120, 60, 3),
            ("WEEKDAY10", "10% off Monday to Thursday", "percentage", "10", "1500", "400", -60, 90, 5),
            ("MONSOON15", "Monsoon wellness: 15% off", "percentage", "15", "1500", "500", -100, -45, 2),
            ("FESTIVE25", "Festive glow: 25% off", "percentage", "25", "2500", "750", -40, -20, 1),
            ("FREEHTW", "Free hot towel wrap with any 90-minute massage", "free_addon", "250", "2500", "250",
             -10, 50, 1),
        )
        for code, name, kind, value, min_amount, max_discount, start, end, per_customer in specs:
            valid_from = self.at(self.today + dt.timedelta(days=start), 0)
            valid_to = self.at(self.today + dt.timedelta(days=end), 24 * 60 - 1)
            status = "active" if end >= 0 else "expired"
            promo_id = _uid(rng)
            creator = rng.choice(marketing)
            created_at = min(valid_from - dt.timedelta(days=3), self.anchor)
            self.rows["promotions"].append({
                "id": promo_id, "code": code, "name": name, "description": name, "type": kind,
                "discount_value": Decimal(value), "min_booking_amount": Decimal(min_amount),
                "max_discount_amount": Decimal(max_discount) if max_discount else None,
                "applicable_services": [], "applicable_vendors": [], "usage_limit_per_customer": per_customer,
                "total_usage_limit": None if code == "WELCOME20" else self.count(5000, 200),
                "current_usage_count": 0, "valid_from": valid_from, "valid_to": valid_to,
                "terms_and_conditions": "One code per booking. Not valid with other offers. "
                                        "Discount applies before GST.",
                "status": status, "created_by": creator.id, "created_at": created_at, "updated_at": created_at,
            })
            if kind in ("percentage", "fixed_amount"):  # the add-on offer is not applied to demo bookings
                self.promotions.append(_Promotion(
                    promo_id, code, kind, Decimal(value), Decimal(min_amount),
                    Decimal(max_discount) if max_discount else None, valid_from, valid_to, per_customer))
        n_customers = len(self.customers)
        campaigns = (
            ("Monsoon Wellness Week", "multi_channel", "completed", -100, -86, "75000", ["silver", "gold"]),
            ("Festive Glow Offer", "email", "completed", -42, -20, "120000", ["gold", "platinum", "diamond"]),
            ("Win-back: we miss you", "sms", "active", -7, 14, "30000", ["silver"]),
            ("Weekend Couples Retreat", "push", "scheduled", 3, 10, "40000", ["gold", "platinum"]),
            ("New Year Detox Packages", "multi_channel", "draft", 30, 45, "90000", []),
        )
        for name, kind, status, start, end, budget, tiers in campaigns:
            audience = max(10, int(n_customers * rng.uniform(0.2, 0.6)))
            sent = audience if status in ("completed", "active") else 0
            delivered = int(sent * rng.uniform(0.92, 0.98))
            opened = int(delivered * rng.uniform(0.18, 0.4))
            clicked = int(opened * rng.uniform(0.1, 0.3))
            start_at = self.at(self.today + dt.timedelta(days=start), 10 * 60)
            created_at = min(start_at - dt.timedelta(days=5), self.anchor - dt.timedelta(hours=5))
            self.rows["campaigns"].append({
                "id": _uid(rng), "name": name, "type": kind, "status": status,
                "target_audience": {"tier": tiers, "city": [], "last_booking_days": 60},
                "content": {"subject": name, "body": f"{name}: treat yourself at an OMBARO partner near you.",
                            "images": [], "cta": "Book now"},
                "start_date": start_at, "end_date": self.at(self.today + dt.timedelta(days=end), 22 * 60),
                "budget": Decimal(budget), "created_by": rng.choice(marketing).id,
                "approved_by": head.id if status != "draft" else None,
                "metrics": {"sent": sent, "delivered": delivered, "opened": opened, "clicked": clicked,
                            "converted": int(clicked * rng.uniform(0.05, 0.2))},
                "created_at": created_at, "updated_at": created_at,
            })

    # -- bookings --------------------------------------------------------------------

    def build_bookings(self) -> None:
        rng = self.rng("bookings")
        pay_rng = self.rng("payments")
        bookable = [v for v in self.vendors if v.bookable and v.services]
        vendor_weights = [sum(t.status == "active" for t in v.therapists) + 1 for v in bookable]
        by_city: dict[str, list[_Customer]] = defaultdict(list)
        for c in self.customers:
            by_city[c.city].append(c)  # already in sign-up order
        signup = {city: [c.created_at for c in cs] for city, cs in by_city.items()}
        busy: dict[tuple[uuid.UUID, dt.date], list[tuple[int, int]]] = defaultdict(list)
        promo_uses: Counter[tuple[uuid.UUID, uuid.UUID]] = Counter()
        drafts: list[Row] = []
        per_day = 20000 / HISTORY_DAYS * self.scale
        day_factor = (0.85, 0.85, 0.9, 0.95, 1.05, 1.3, 1.35)
        for offset in range(-(HISTORY_DAYS - 1), UPCOMING_DAYS + 1):
            day = self.today + dt.timedelta(days=offset)
            if offset <= 0:
                trend = 0.9 + 0.2 * (offset + HISTORY_DAYS - 1) / (HISTORY_DAYS - 1)  # slow growth
                target = per_day * trend * day_factor[day.weekday()] * rng.uniform(0.9, 1.1)
            else:
                target = per_day * (0.55 if offset == 1 else 0.3)  # booked ahead so far
            for _ in range(max(1, round(target))):
                draft = self._booking(rng, pay_rng, day, bookable, vendor_weights, by_city, signup, busy,
                                      promo_uses)
                if draft is not None:
                    drafts.append(draft)
        # Numbers follow creation: OBO-<IST creation date>-<sequence of that day>.
        drafts.sort(key=lambda d: (d["row"]["created_at"], d["row"]["id"]))
        sequence: Counter[dt.date] = Counter()
        for d in drafts:
            made = d["row"]["created_at"].astimezone(PLATFORM_ZONE).date()
            sequence[made] += 1
            d["row"]["booking_number"] = f"OBO-{made:%Y%m%d}-{sequence[made]:04d}"
        drafts.sort(key=lambda d: (d["row"]["booking_date"], d["row"]["booking_time"], d["row"]["booking_number"]))
        self.bookings = drafts
        for d in drafts:
            self.rows["bookings"].append(d["row"])
            self.rows["booking_items"].extend(d["items"])
            self.rows["therapist_assignments"].extend(d["assignments"])
            self.rows["payments"].extend(d["payments"])
            if d["row"]["promotion_id"] is not None:
                self.rows["promotion_usage"].append({
                    "id": _uid(pay_rng), "promotion_id": d["row"]["promotion_id"],
                    "customer_id": d["row"]["customer_id"], "booking_id": d["row"]["id"],
                    "discount_amount": d["row"]["discount_amount"], "used_at": d["row"]["created_at"],
                })
        uses = Counter(u["promotion_id"] for u in self.rows["promotion_usage"])
        for p in self.rows["promotions"]:
            p["current_usage_count"] = uses.get(p["id"], 0)

    def _booking(self, rng: random.Random, pay_rng: random.Random, day: dt.date, bookable: list[_Vendor],
                 vendor_weights: list[int], by_city: dict[str, list[_Customer]],
                 signup: dict[str, list[dt.datetime]],
                 busy: dict[tuple[uuid.UUID, dt.date], list[tuple[int, int]]],
                 promo_uses: Counter[tuple[uuid.UUID, uuid.UUID]]) -> Row | None:
        upcoming = day > self.today
        if upcoming:
            status = _weighted(rng, (("pending", 20), ("confirmed", 35), ("assigned", 40), ("cancelled", 5)))
        else:
            status = _weighted(rng, (("completed", 88), ("cancelled", 12)))
        for _attempt in range(4):
            vendor = rng.choices(bookable, weights=vendor_weights)[0]
            hours = vendor.hours[day.weekday()]
            if hours is None:
                continue
            plan = self._plan_items(rng, vendor)
            length = sum(p["minutes"] for p in plan)
            if hours[1] - hours[0] < length:
                continue
            starts = list(range(hours[0], hours[1] - length + 1, 30))
            weights = [1.6 if s >= 17 * 60 else 0.6 if s < 11 * 60 else 1.0 for s in starts]
            instructions = rng.choice(SPECIAL_INSTRUCTIONS) if rng.random() < 0.15 else None
            wants_female = instructions == "Prefer a female therapist"
            for _slot in range(8):
                start = rng.choices(starts, weights=weights)[0]
                picks = self._staff(rng, vendor, day, start, plan, busy, wants_female) \
                    if status in ("completed", "assigned") else []
                if picks is not None:
                    break
            else:
                continue
            start_at = self.at(day, start)
            created = self._created_at(rng, start_at)
            customers = by_city.get(vendor.city, [])
            eligible = bisect_left(signup.get(vendor.city, []), created)
            if eligible == 0:
                continue
            customer = customers[rng.randrange(eligible)]
            for therapist, _index, item_start, minutes in picks:
                busy[(therapist.id, day)].append((item_start, item_start + minutes))
            return self._booking_rows(rng, pay_rng, vendor, customer, day, start, start_at, created, status,
                                      plan, picks, instructions, promo_uses)
        return None

    def _plan_items(self, rng: random.Random, vendor: _Vendor) -> list[dict[str, Any]]:
        weights = [(c, SERVICES[SERVICE_INDEX[c]].popularity) for c in vendor.services]
        plan: list[dict[str, Any]] = []
        for _ in range(2 if rng.random() < 0.18 else 1):
            code = _weighted(rng, weights)
            if any(p["code"] == code for p in plan):
                continue
            options = SERVICES[SERVICE_INDEX[code]].durations
            duration = _weighted(rng, list(zip(options, (50, 35, 15)[: len(options)], strict=True)))
            addons: list[Row] = []
            roll = rng.random()
            if roll < 0.3:
                addons = rng.sample(self.addons, 2 if roll < 0.05 else 1)
            plan.append({"code": code, "duration": duration, "addons": addons,
                         "minutes": duration + sum(a["duration"] for a in addons),
                         "therapists": 2 if self.services[code]["category"] == "couples" else 1})
        return plan

    def _staff(self, rng: random.Random, vendor: _Vendor, day: dt.date, start: int, plan: list[dict[str, Any]],
               busy: dict[tuple[uuid.UUID, dt.date], list[tuple[int, int]]],
               wants_female: bool) -> list[tuple[_Therapist, int, int, int]] | None:
        """Therapists for each item, back to back from `start`: same vendor, right skill, on shift,
        not on leave, no overlap with their other work that day. None when the slot cannot be staffed."""
        picks: list[tuple[_Therapist, int, int, int]] = []
        at = start
        for index, item in enumerate(plan):
            end = at + item["minutes"]
            free = []
            for t in vendor.therapists:
                if t.status in ("inactive", "terminated") or (day > self.today and t.status != "active"):
                    continue
                shift = t.shifts.get(day.weekday())
                if shift is None or item["code"] not in t.codes or day in t.leave_days:
                    continue
                s0, s1, b0, b1 = shift
                if at < s0 or end > s1 or (at < b1 and end > b0):
                    continue
                if any(at < e and end > s for s, e in busy.get((t.id, day), [])):
                    continue
                if any(p[0].id == t.id and at < p[2] + p[3] and end > p[2] for p in picks):
                    continue
                free.append(t)
            if wants_female and sum(t.gender == "female" for t in free) >= item["therapists"]:
                free = [t for t in free if t.gender == "female"]
            if len(free) < item["therapists"]:
                return None
            for t in rng.sample(free, item["therapists"]):
                picks.append((t, index, at, item["minutes"]))
            at = end
        return picks

    def _created_at(self, rng: random.Random, start_at: dt.datetime) -> dt.datetime:
        lead = _weighted(rng, (("same_day", 25), ("days", 55), ("weeks", 20)))
        if lead == "same_day":
            minutes = rng.randint(60, 8 * 60)
        elif lead == "days":
            minutes = rng.randint(24 * 60, 3 * 24 * 60)
        else:
            minutes = rng.randint(4 * 24 * 60, 14 * 24 * 60)
        created = start_at - dt.timedelta(minutes=minutes, seconds=rng.randint(0, 59))
        if created > self.anchor:  # upcoming: it must already exist when the data set is taken
            created = self.anchor - dt.timedelta(minutes=rng.randint(10, 12 * 60), seconds=rng.randint(0, 59))
        return created

    def _booking_rows(self, rng: random.Random, pay_rng: random.Random, vendor: _Vendor, customer: _Customer,
                      day: dt.date, start: int, start_at: dt.datetime, created: dt.datetime, status: str,
                      plan: list[dict[str, Any]], picks: list[tuple[_Therapist, int, int, int]],
                      instructions: str | None, promo_uses: Counter[tuple[uuid.UUID, uuid.UUID]]) -> Row:
        booking_id = _uid(rng)
        if vendor.business_type == "home_service":
            booking_type = "home_service"
        elif vendor.business_type == "hotel_spa":
            booking_type = _weighted(rng, (("hotel_service", 70), ("spa_visit", 30)))
        else:
            booking_type = _weighted(rng, (("spa_visit", 82), ("home_service", 18)))
        if booking_type == "home_service":
            a = rng.choice(customer.addresses)
            location = {"address": f"{a['line1']}, {a['line2']}, {vendor.city} {a['pincode']}",
                        "city": vendor.city, "latitude": float(a["latitude"]),
                        "longitude": float(a["longitude"]), "landmark": a["landmark"]}
        else:
            va = vendor.address
            prefix = f"Room {rng.randint(1, 12)}{rng.randint(1, 40):02d}, " if booking_type == "hotel_service" else ""
            location = {"address": f"{prefix}{va['street']}, {vendor.city} {va['pincode']}", "city": vendor.city,
                        "latitude": va["latitude"], "longitude": va["longitude"], "landmark": va["landmark"]}
        items: list[Row] = []
        subtotal = Decimal("0.00")
        for p in plan:
            service = self.services[p["code"]]
            price = item_price(service["base_price_60min"], p["duration"])
            quantity = 1
            line = money(price * quantity + sum((a["price"] for a in p["addons"]), Decimal("0.00")))
            subtotal += line
            items.append({
                "id": _uid(rng), "booking_id": booking_id, "service_id": service["id"], "duration": p["duration"],
                "price": price, "quantity": quantity,
                "addon_services": [{"id": str(a["id"]), "name": a["name"], "price": str(a["price"])}
                                   for a in p["addons"]],
                "subtotal": line, "created_at": created,
            })
        promotion, discount = None, Decimal("0.00")
        if status != "cancelled" and rng.random() < 0.12:
            for promo in rng.sample(self.promotions, len(self.promotions)):
                key = (promo.id, customer.id)
                if promo.code == "WEEKDAY10" and day.weekday() > 3:  # Monday to Thursday only
                    continue
                if (promo.valid_from <= created <= promo.valid_to and subtotal >= promo.min_amount
                        and promo_uses[key] < promo.per_customer):
                    if promo.kind == "percentage":
                        discount = money(subtotal * promo.value / 100)
                        if promo.max_discount is not None:
                            discount = min(discount, promo.max_discount)
                    else:
                        discount = min(promo.value, subtotal)
                    promotion = promo
                    promo_uses[key] += 1
                    break
        tax = gst_on(subtotal - discount)
        total = subtotal - discount + tax
        end_at = start_at + dt.timedelta(minutes=sum(p["minutes"] for p in plan))
        row: Row = {
            "id": booking_id, "booking_number": "", "customer_id": customer.id, "vendor_id": vendor.id,
            "booking_type": booking_type, "service_location": location, "booking_date": day,
            "booking_time": _clock(start), "status": status, "cancellation_reason": None, "cancelled_by": None,
            "cancelled_at": None, "payment_status": "pending", "special_instructions": instructions,
            "subtotal_amount": subtotal, "discount_amount": discount, "tax_amount": tax, "total_amount": total,
            "promotion_id": promotion.id if promotion else None, "created_at": created, "updated_at": created,
        }
        assignments: list[Row] = []
        finished = end_at
        for therapist, index, item_start, minutes in picks:
            service_code = plan[index]["code"]
            assigned_at = min(created + dt.timedelta(minutes=rng.randint(2, 90)),
                              self.at(day, item_start) - dt.timedelta(minutes=15), self.anchor)
            assigned_at = max(assigned_at, created + dt.timedelta(seconds=30))
            a_row: Row = {
                "id": _uid(rng), "booking_id": booking_id, "therapist_id": therapist.id, "vendor_id": vendor.id,
                "customer_id": customer.id, "service_id": self.services[service_code]["id"],
                "assignment_date": day, "assignment_time": _clock(item_start),
                "status": "completed" if status == "completed" else rng.choice(("assigned", "acknowledged")),
                "location_address": location["address"],
                "location_latitude": Decimal(f"{location['latitude']:.6f}"),
                "location_longitude": Decimal(f"{location['longitude']:.6f}"),
                "estimated_duration": minutes, "actual_start_time": None, "actual_end_time": None,
                "actual_duration": None, "distance_traveled": None, "travel_time": None,
                "customer_rating": None, "customer_feedback": None, "notes": None,
                "created_at": assigned_at, "updated_at": assigned_at,
            }
            if booking_type == "home_service":
                a_row["distance_traveled"] = money(Decimal(rng.randint(150, 1500)) / 100)
                a_row["travel_time"] = rng.randint(10, 50)
            if status == "completed":
                actual_start = self.at(day, item_start) + dt.timedelta(minutes=rng.randint(-3, 8))
                actual_minutes = minutes + rng.randint(-5, 5)
                actual_end = actual_start + dt.timedelta(minutes=actual_minutes)
                a_row.update(actual_start_time=actual_start, actual_end_time=actual_end,
                             actual_duration=actual_minutes, updated_at=actual_end)
                finished = max(finished, actual_end)
            assignments.append(a_row)
        payments: list[Row] = []
        if status == "completed":
            row["updated_at"] = finished + dt.timedelta(minutes=rng.randint(1, 15))
            if pay_rng.random() < 0.98:
                row["payment_status"] = "paid"
                prepaid = pay_rng.random() < 0.35
                paid_at = created + dt.timedelta(minutes=pay_rng.randint(1, 4)) if prepaid \
                    else finished + dt.timedelta(minutes=pay_rng.randint(2, 20))
                payments.extend(self._payments(pay_rng, row, booking_type, paid_at, allow_cash=not prepaid))
        elif status == "cancelled":
            by_customer = rng.random() < 0.85
            horizon = min(start_at, self.anchor)
            cancelled_at = created + (horizon - created) * rng.uniform(0.1, 0.95)
            cancelled_at = cancelled_at.replace(microsecond=0)
            row.update(cancellation_reason=rng.choice(CUSTOMER_CANCEL_REASONS if by_customer
                                                      else VENDOR_CANCEL_REASONS),
                       cancelled_by=customer.id if by_customer else vendor.id, cancelled_at=cancelled_at,
                       updated_at=cancelled_at)
            if pay_rng.random() < 0.3:  # it had been paid online: refunded
                paid_at = created + dt.timedelta(minutes=pay_rng.randint(1, 4))
                paid_at = min(paid_at, cancelled_at - dt.timedelta(seconds=30))
                method = self._method(pay_rng, booking_type, allow_cash=False)
                payment = self._payment_row(pay_rng, row, method, paid_at, "success")
                refund_at = min(cancelled_at + dt.timedelta(hours=pay_rng.randint(2, 72)), self.anchor)
                payment.update(status="refunded", refund_amount=payment["total_amount"], refund_date=refund_at,
                               refund_reason=row["cancellation_reason"], updated_at=refund_at)
                payments.append(payment)
                row["payment_status"] = "refunded"
        elif pay_rng.random() < 0.4:  # upcoming, prepaid online
            row["payment_status"] = "paid"
            payments.extend(self._payments(pay_rng, row, booking_type,
                                           created + dt.timedelta(minutes=pay_rng.randint(1, 4)),
                                           allow_cash=False))
        return {"row": row, "items": items, "assignments": assignments, "payments": payments,
                "plan": plan, "vendor": vendor, "customer": customer, "picks": picks, "end": finished}

    def _payments(self, rng: random.Random, booking: Row, booking_type: str, paid_at: dt.datetime, *,
                  allow_cash: bool) -> list[Row]:
        """The successful payment for a booking, sometimes preceded by a failed attempt."""
        method = self._method(rng, booking_type, allow_cash=allow_cash)
        rows: list[Row] = []
        if method != "cash" and rng.random() < 0.04:
            failed_at = paid_at - dt.timedelta(minutes=rng.randint(1, 3))
            rows.append(self._payment_row(rng, booking, method, failed_at, "failed"))
        rows.append(self._payment_row(rng, booking, method, paid_at, "success"))
        return rows

    @staticmethod
    def _method(rng: random.Random, booking_type: str, *, allow_cash: bool) -> str:
        """Cash is paid at the counter (or to the therapist) after the session; everything else is Razorpay."""
        cash_share = 0.3 if booking_type == "spa_visit" else 0.15
        if allow_cash and rng.random() < cash_share:
            return "cash"
        return _weighted(rng, (("upi", 50), ("credit_card", 20), ("debit_card", 15), ("net_banking", 5),
                               ("wallet", 10)))

    def _payment_row(self, rng: random.Random, booking: Row, method: str, at: dt.datetime, status: str) -> Row:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        transaction_id = f"TXN{at.astimezone(PLATFORM_ZONE):%Y%m%d}{rng.getrandbits(64):016X}"
        if method == "cash":
            gateway, gateway_id = None, None
            metadata: dict[str, Any] = {"collected_by": "front_desk", "receipt": f"RCPT-{rng.randrange(10**6):06d}"}
        else:
            gateway = "razorpay"
            gateway_id = "pay_" + "".join(rng.choice(alphabet) for _ in range(14))
            metadata = {"razorpay_order_id": "order_" + "".join(rng.choice(alphabet) for _ in range(14)),
                        "razorpay_payment_id": gateway_id, "method": method}
            if method == "upi":
                handle = rng.choice(("okaxis", "okhdfcbank", "ybl", "paytm"))
                metadata["vpa"] = f"user{rng.randrange(10**6)}@{handle}"
            elif method in ("credit_card", "debit_card"):
                metadata["card_network"] = rng.choice(("Visa", "MasterCard", "RuPay"))
                metadata["card_last4"] = f"{rng.randrange(10000):04d}"
            elif method == "net_banking":
                metadata["bank"] = rng.choice(BANKS)[0]
            else:
                metadata["wallet"] = rng.choice(("paytm", "phonepe", "amazonpay"))
            if status == "failed":
                metadata["error_code"] = "BAD_REQUEST_ERROR"
                metadata["error_description"] = "Payment declined by the issuing bank"
        return {
            "id": _uid(rng), "transaction_id": transaction_id, "booking_id": booking["id"],
            "customer_id": booking["customer_id"], "vendor_id": booking["vendor_id"],
            "amount": booking["subtotal_amount"], "tax_amount": booking["tax_amount"],
            "discount_amount": booking["discount_amount"], "convenience_fee": Decimal("0.00"),
            "total_amount": booking["total_amount"], "payment_method": method, "payment_gateway": gateway,
            "gateway_transaction_id": gateway_id, "status": status, "payment_date": at,
            "refund_amount": None, "refund_date": None, "refund_reason": None, "metadata": metadata,
            "created_at": at, "updated_at": at,
        }

    # -- what follows from bookings --------------------------------------------------

    def build_feedback(self) -> None:
        """Assignment ratings, reviews, and the aggregates they feed (ratings, customer totals)."""
        rng = self.rng("reviews")
        care = self.staff_of("customer_care")
        rating_weights = ((5, 50), (4, 30), (3, 12), (2, 5), (1, 3))
        for d in self.bookings:
            row = d["row"]
            if row["status"] != "completed" or not d["assignments"]:
                continue
            roll = rng.random()
            if roll > 0.35:
                continue
            rating = _weighted(rng, rating_weights)
            assignment = d["assignments"][0]
            assignment["customer_rating"] = rating
            therapist = next(p[0] for p in d["picks"] if p[0].id == assignment["therapist_id"])
            if roll > 0.08:  # rated in the app only; about one in twelve also writes a review
                continue
            written = d["end"] + dt.timedelta(minutes=rng.randint(30, 48 * 60))
            if written > self.anchor:
                continue
            title, text = rng.choice(REVIEW_TEXTS[rating])
            service_name = self.services[d["plan"][0]["code"]]["name"]
            text = text.format(therapist=therapist.name.split()[0], service=service_name.lower(),
                               city=d["vendor"].city)
            assignment["customer_feedback"] = text
            recent = written > self.anchor - dt.timedelta(days=2)
            status = "pending" if recent else _weighted(rng, (("approved", 92), ("rejected", 4), ("flagged", 4)))
            self.rows["reviews"].append({
                "id": _uid(rng), "booking_id": row["id"], "customer_id": row["customer_id"],
                "vendor_id": row["vendor_id"], "therapist_id": therapist.id,
                "service_id": self.services[d["plan"][0]["code"]]["id"], "overall_rating": rating,
                "service_quality_rating": max(1, min(5, rating + rng.choice((-1, 0, 0, 1)))),
                "professionalism_rating": max(1, min(5, rating + rng.choice((-1, 0, 0, 1)))),
                "cleanliness_rating": max(1, min(5, rating + rng.choice((-1, 0, 0, 1)))),
                "value_for_money_rating": max(1, min(5, rating + rng.choice((-1, 0, 0)))),
                "title": title, "review_text": text, "photos": None, "would_recommend": rating >= 4,
                "status": status, "moderated_by": rng.choice(care).id if status != "pending" else None,
                "moderation_notes": "Contains personal contact details" if status == "rejected" else None,
                "helpful_count": rng.randint(0, 12) if status == "approved" else 0,
                "created_at": written, "updated_at": written,
            })
        # Therapist rating: mean of in-app ratings; services: completed assignments.
        stats: dict[uuid.UUID, list[int]] = defaultdict(list)
        done: Counter[uuid.UUID] = Counter()
        for a in self.rows["therapist_assignments"]:
            if a["status"] == "completed":
                done[a["therapist_id"]] += 1
                if a["customer_rating"] is not None:
                    stats[a["therapist_id"]].append(a["customer_rating"])
        for t in self.rows["therapists"]:
            ratings = stats.get(t["id"], [])
            t["total_services"] = done.get(t["id"], 0)
            t["total_reviews"] = len(ratings)
            t["rating"] = money(Decimal(sum(ratings)) / len(ratings)) if ratings else Decimal("0.00")
        # Vendor rating: mean of approved reviews.
        vendor_reviews: dict[uuid.UUID, list[int]] = defaultdict(list)
        for r in self.rows["reviews"]:
            if r["status"] == "approved":
                vendor_reviews[r["vendor_id"]].append(r["overall_rating"])
        for v in self.rows["vendors"]:
            ratings = vendor_reviews.get(v["id"], [])
            v["total_reviews"] = len(ratings)
            v["rating"] = money(Decimal(sum(ratings)) / len(ratings)) if ratings else Decimal("0.00")
        # Customer totals, loyalty (1 point per Rs 100 paid) and preferences from their own history.
        per_customer: dict[uuid.UUID, list[Row]] = defaultdict(list)
        for d in self.bookings:
            per_customer[d["row"]["customer_id"]].append(d)
        for c in self.rows["customers"]:
            history = per_customer.get(c["id"], [])
            paid = [d for d in history if d["row"]["status"] == "completed" and d["row"]["payment_status"] == "paid"]
            c["total_bookings"] = len(history)
            c["total_spent"] = sum((d["row"]["total_amount"] for d in paid), Decimal("0.00"))
            # The ledger and the balance agree: one 'earned' entry per paid booking.
            for d in paid:
                points = int(d["row"]["total_amount"] // 100)
                if points:
                    self.rows["loyalty_transactions"].append({
                        "id": _uid(rng), "customer_id": c["id"], "transaction_type": "earned", "points": points,
                        "booking_id": d["row"]["id"], "description": f"Points for {d['row']['booking_number']}",
                        "created_at": d["row"]["updated_at"],
                    })
                    c["loyalty_points"] += points
            if history:
                services = Counter(self.services[d["plan"][0]["code"]]["id"] for d in history)
                vendors = Counter(d["row"]["vendor_id"] for d in history)
                therapists = Counter(a["therapist_id"] for d in history for a in d["assignments"])
                c["preferred_services"] = [s for s, _ in services.most_common(2)]
                c["preferred_vendors"] = [v for v, _ in vendors.most_common(1)]
                c["preferred_therapists"] = [t for t, _ in therapists.most_common(1)] or None
                last = max(d["row"]["updated_at"] for d in history)
                c["updated_at"] = max(c["created_at"], min(last, self.anchor))

    def build_hr(self) -> None:
        rng = self.rng("hr")
        leaves: dict[uuid.UUID, set[dt.date]] = defaultdict(set)
        approvers: dict[uuid.UUID, uuid.UUID] = {}
        for e in self.employees:
            if rng.random() > 0.55:
                continue
            approver = e.manager or e.id
            approvers[e.id] = approver
            start = self.today + dt.timedelta(days=rng.randint(-80, 20))
            start = max(start, e.joining + dt.timedelta(days=1))
            end = start + dt.timedelta(days=rng.choice((0, 0, 1, 2, 3, 4)))
            applied = min(self.at(start - dt.timedelta(days=rng.randint(1, 14)), rng.randint(9 * 60, 19 * 60)),
                          self.anchor - dt.timedelta(hours=3))
            if start > self.today:
                status = _weighted(rng, (("pending", 60), ("approved", 40)))
            else:
                status = _weighted(rng, (("approved", 80), ("rejected", 10), ("cancelled", 10)))
            if e.last_day is not None and start > e.last_day:
                continue
            decided = applied + dt.timedelta(hours=rng.randint(2, 48))
            leave_type = _weighted(rng, (("casual", 40), ("sick", 30), ("earned", 20), ("emergency", 7),
                                         ("unpaid", 3)))
            self.rows["leave_requests"].append({
                "id": _uid(rng), "employee_id": e.id, "leave_type": leave_type, "from_date": start,
                "to_date": end,
                "reason": {"casual": "Personal work", "sick": "Viral fever", "earned": "Family vacation",
                           "emergency": "Family emergency", "unpaid": "Extended travel"}[leave_type],
                "status": status, "applied_date": applied,
                "approved_by": approver if status in ("approved", "rejected") else None,
                "approved_date": decided if status in ("approved", "rejected") else None,
                "rejection_reason": "Quarter-end close, please move by a week" if status == "rejected" else None,
                "documents": ["https://files.ombaro.in/hr/medical-certificate.pdf"] if leave_type == "sick"
                and end > start else None,
                "created_at": applied, "updated_at": decided if status != "pending" else applied,
            })
            if status == "approved":
                day = start
                while day <= end:
                    leaves[e.id].add(day)
                    day += dt.timedelta(days=1)
        # One attendance row per employee per working day (Mon-Sat) they were on the rolls.
        statuses = (("present", 82), ("late", 6), ("work_from_home", 6), ("half_day", 3), ("absent", 3))
        for e in self.employees:
            day = max(self.first_day, e.joining)
            last = min(self.today, e.last_day or self.today)
            while day <= last:
                if day.weekday() == 6:
                    day += dt.timedelta(days=1)
                    continue
                if (day.month, day.day) in HOLIDAYS:
                    status = "holiday"
                elif day in leaves[e.id]:
                    status = "leave"
                else:
                    status = _weighted(rng, statuses)
                row: Row = {"id": _uid(rng), "employee_id": e.id, "date": day, "status": status,
                            "check_in_time": None, "check_out_time": None, "work_hours": None,
                            "check_in_location": None, "check_out_location": None, "notes": None,
                            "approved_by": approvers.get(e.id) if status == "leave" else None}
                if status in ("present", "late", "work_from_home", "half_day"):
                    check_in = 9 * 60 + rng.randint(-20, 40) if status != "late" else 10 * 60 + rng.randint(5, 90)
                    worked = rng.randint(4 * 60, 5 * 60) if status == "half_day" else rng.randint(8 * 60, 10 * 60)
                    cin, cout = self.at(day, check_in), self.at(day, check_in + worked)
                    place = {"latitude": e.office["latitude"], "longitude": e.office["longitude"],
                             "address": e.office["address"]} if status != "work_from_home" else \
                        {"latitude": None, "longitude": None, "address": "Remote"}
                    row.update(check_in_time=cin, check_out_time=cout, work_hours=money(Decimal(worked) / 60),
                               check_in_location=place, check_out_location=place)
                    if status == "late":
                        row["notes"] = rng.choice(("Traffic on the way", "Train delay", "Doctor's appointment"))
                stamp = row["check_out_time"] or self.at(day, 19 * 60)
                row["created_at"] = row["check_in_time"] or self.at(day, 10 * 60)
                row["updated_at"] = min(stamp, self.anchor)
                self.rows["attendance_records"].append(row)
                day += dt.timedelta(days=1)

    def build_support(self) -> None:
        rng = self.rng("support")
        care = self.staff_of("customer_care")
        with_history = [d for d in self.bookings if d["row"]["created_at"] < self.anchor - dt.timedelta(hours=6)]
        n = min(len(with_history), self.count(60, 3))
        picked = sorted(rng.sample(range(len(with_history)), n))
        categories = (("booking_issue", 30), ("payment_issue", 20), ("service_quality", 20), ("technical", 12),
                      ("feedback", 10), ("other", 8))
        drafts = []
        for i in picked:
            d = with_history[i]
            category = _weighted(rng, categories)
            opened = d["row"]["created_at"] + dt.timedelta(hours=rng.randint(1, 72))
            opened = min(opened, self.anchor - dt.timedelta(hours=1))
            drafts.append((opened, d, category))
        drafts.sort(key=lambda x: (x[0], x[1]["row"]["id"]))
        sequence: Counter[dt.date] = Counter()
        for opened, d, category in drafts:
            made = opened.astimezone(PLATFORM_ZONE).date()
            sequence[made] += 1
            age = self.anchor - opened
            if age > dt.timedelta(days=7):
                status = _weighted(rng, (("closed", 60), ("resolved", 40)))
            else:
                status = _weighted(rng, (("open", 30), ("in_progress", 35), ("waiting", 15), ("resolved", 20)))
            agent = rng.choice(care)
            assigned_at = opened + dt.timedelta(minutes=rng.randint(5, 240)) if status != "open" else None
            if assigned_at is not None:
                assigned_at = min(assigned_at, self.anchor)
            resolved_at = None
            if status in ("resolved", "closed") and assigned_at is not None:
                resolved_at = min(assigned_at + dt.timedelta(hours=rng.randint(1, 72)), self.anchor)
            ticket_id = _uid(rng)
            subject = rng.choice(TICKET_SUBJECTS[category])
            self.rows["support_tickets"].append({
                "id": ticket_id, "ticket_number": f"TKT-{made:%Y%m%d}-{sequence[made]:04d}",
                "customer_id": d["row"]["customer_id"], "booking_id": d["row"]["id"], "category": category,
                "priority": _weighted(rng, (("low", 20), ("medium", 50), ("high", 25), ("urgent", 5))),
                "subject": subject,
                "description": f"{subject}. Booking {d['row']['booking_number']}.",
                "status": status, "assigned_to": agent.id if assigned_at else None, "assigned_at": assigned_at,
                "resolved_at": resolved_at,
                "resolution_notes": "Explained and resolved; customer confirmed." if resolved_at else None,
                "satisfaction_rating": rng.randint(3, 5) if resolved_at and rng.random() < 0.6 else None,
                "attachments": None, "created_at": opened, "updated_at": resolved_at or assigned_at or opened,
            })
            messages = [(d["row"]["customer_id"], "customer", f"Hi, {subject.lower()}. Please help.", opened, False)]
            if assigned_at:
                messages.append((agent.id, "employee", "Thanks for reaching out, we are looking into this.",
                                 assigned_at, False))
                if rng.random() < 0.4:
                    messages.append((agent.id, "employee", "Checked with the vendor; awaiting their reply.",
                                     assigned_at + dt.timedelta(minutes=5), True))
            if resolved_at:
                messages.append((agent.id, "employee", "This is resolved now. Anything else we can help with?",
                                 resolved_at, False))
            for sender, kind, text, at, internal in messages:
                self.rows["ticket_messages"].append({
                    "id": _uid(rng), "ticket_id": ticket_id, "sender_id": sender, "sender_type": kind,
                    "message": text, "attachments": None, "is_internal": internal,
                    "created_at": min(at, self.anchor),
                })

    def build_notifications(self) -> None:
        rng = self.rng("notifications")
        since = self.anchor - dt.timedelta(days=7)
        for d in self.bookings:
            row = d["row"]
            if row["created_at"] < since:
                continue
            events = []
            if row["status"] != "pending":
                events.append(("booking_confirmed", "Booking confirmed",
                               f"Your booking {row['booking_number']} on {row['booking_date']:%d %b} at "
                               f"{row['booking_time']:%H:%M} is confirmed.",
                               row["created_at"] + dt.timedelta(minutes=2)))
            if row["status"] == "cancelled":
                events.append(("booking_cancelled", "Booking cancelled",
                               f"Booking {row['booking_number']} was cancelled.", row["cancelled_at"]))
            if row["status"] == "completed":
                events.append(("service_completed", "How was your session?",
                               "Rate your therapist and earn loyalty points.", d["end"] + dt.timedelta(minutes=10)))
            for kind, title, message, at in events:
                if at > self.anchor:
                    continue
                read = at < self.anchor - dt.timedelta(hours=12) and rng.random() < 0.7
                self.rows["notifications"].append({
                    "id": _uid(rng), "user_id": row["customer_id"], "type": kind, "title": title,
                    "message": message, "data": {"booking_id": str(row["id"])},
                    "channels": ["push", "in_app"] if rng.random() < 0.7 else ["push", "in_app", "sms"],
                    "is_read": read, "read_at": at + dt.timedelta(minutes=rng.randint(1, 600)) if read else None,
                    "created_at": at,
                })

    def build_analytics(self) -> None:
        rng = self.rng("analytics")
        platforms = (("android", 55), ("ios", 30), ("web", 15))
        for d in self.bookings:
            row = d["row"]
            if row["created_at"] < self.at(self.first_day, 0):
                continue
            platform = _weighted(rng, platforms)
            session = f"sess_{rng.getrandbits(64):016x}"
            city = d["vendor"].city
            for name, shift in (("booking_started", -4), ("booking_completed", 0)):
                self.rows["analytics_events"].append({
                    "id": _uid(rng), "user_id": row["customer_id"], "session_id": session, "event_name": name,
                    "event_category": "booking",
                    "event_properties": {"vendor_id": str(row["vendor_id"]),
                                         "amount": str(row["total_amount"])} if shift == 0 else
                    {"vendor_id": str(row["vendor_id"])},
                    "device_info": {"platform": platform, "app_version": "3.4.1"},
                    "location_info": {"city": city, "state": CITIES[city].state, "country": "India"},
                    "timestamp": row["created_at"] + dt.timedelta(minutes=shift),
                })
        browsing = self.count(60, 3)
        for offset in range(HISTORY_DAYS):
            day = self.first_day + dt.timedelta(days=offset)
            for _ in range(browsing):
                customer = rng.choice(self.customers)
                if customer.created_at > self.at(day, 23 * 60):
                    continue
                platform = _weighted(rng, platforms)
                session = f"sess_{rng.getrandbits(64):016x}"
                at = self.at(day, rng.randint(7 * 60, 23 * 60 - 30))
                for step, name in enumerate(("app_open", "search", "page_view")[: rng.randint(1, 3)]):
                    props: dict[str, Any] = {}
                    if name == "search":
                        props = {"query": rng.choice(("deep tissue", "spa near me", "couples", "thai",
                                                      "home massage"))}
                    elif name == "page_view":
                        props = {"page": rng.choice(("vendor", "service", "offers"))}
                    self.rows["analytics_events"].append({
                        "id": _uid(rng), "user_id": customer.id, "session_id": session, "event_name": name,
                        "event_category": "engagement", "event_properties": props,
                        "device_info": {"platform": platform, "app_version": "3.4.1"},
                        "location_info": {"city": customer.city, "state": CITIES[customer.city].state,
                                          "country": "India"},
                        "timestamp": at + dt.timedelta(minutes=2 * step),
                    })


# Insertion order respects foreign keys (rows of self-referencing tables are already ordered).
TABLE_ORDER = (
    "auth.users", "user_profiles", "services", "addon_services", "service_packages", "employees",
    "compensation_structures", "vendors", "vendor_staff", "therapists", "therapist_schedules", "therapist_leaves",
    "therapist_locations",
    "customers", "customer_addresses", "promotions", "campaigns", "bookings", "booking_items",
    "therapist_assignments", "payments", "promotion_usage", "reviews", "loyalty_transactions",
    "leave_requests", "attendance_records", "support_tickets", "ticket_messages", "notifications",
    "analytics_events",
)


def _tables() -> dict[str, sa.Table]:
    from ombaro.models import Base  # registers every model on Base.metadata

    return dict(Base.metadata.tables)


def _analytics_insertable(conn: sa.Connection) -> bool:
    """analytics_events is range-partitioned; rows land only if a partition takes them (the default one)."""
    found = conn.execute(sa.text(
        "SELECT c.relkind, coalesce(p.partdefid, 0) <> 0 FROM pg_class c "
        "LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid "
        "WHERE c.oid = to_regclass('analytics_events')")).first()
    if found is None:
        return False
    kind, has_default = found
    return kind == "r" or bool(has_default)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[Row]) -> None:
    # A JSON column given None would store JSON 'null'; leave the key out so the column is SQL NULL
    # (or its default). executemany needs one key set per statement, hence the grouping.
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        clean = {k: v for k, v in row.items() if not (v is None and k in json_columns)}
        groups.setdefault(tuple(clean), []).append(clean)
    statement = sa.insert(table)
    for group in groups.values():
        for start in range(0, len(group), BATCH_ROWS):
            conn.execute(statement, group[start:start + BATCH_ROWS])


def seed_demo(
    conn: sa.Connection,
    *,
    seed: int = 20261126,
    today: dt.date | None = None,
    scale: float = 1.0,
    progress: Callable[[str], None] | None = None,
    data_keys: Mapping[str, bytes] | None = None,
    data_key_id: str | None = None,
) -> dict[str, int]:
    """Fill an empty, migrated database with the demo marketplace; returns rows inserted per table.

    Runs inside the caller's transaction and never commits. Same seed, today and scale give
    identical rows (under the same data key). `today` defaults to the current date in
    Asia/Kolkata. Bank details are sealed with `data_keys[data_key_id]` (default: the environment's
    keys, as the API seals them), so the API shows them and the payroll bank file opens them.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    if today is None:
        today = dt.datetime.now(PLATFORM_ZONE).date()
    report = progress or (lambda _message: None)
    builder = _Builder(seed, today, scale)
    report("generating demo data")
    builder.build_catalogue()
    builder.build_employees()
    builder.build_vendors()
    builder.build_therapists()
    builder.build_customers()
    builder.build_marketing()
    builder.build_bookings()
    builder.build_feedback()
    builder.build_hr()
    builder.build_support()
    builder.build_notifications()
    builder.build_analytics()

    if data_keys is None or data_key_id is None:
        data_keys, data_key_id = load_data_keys()
    _seal_bank_details(builder.rows, data_keys, data_key_id)
    tables = _tables()
    counts: dict[str, int] = {}
    for name in TABLE_ORDER:
        rows = builder.rows.get(name, [])
        if name == "analytics_events" and not _analytics_insertable(conn):
            report("analytics_events: skipped (no partition takes the rows)")
            continue
        _insert(conn, tables[name], rows)
        counts[name] = len(rows)
        report(f"{name}: {len(rows)} rows")
    return counts


# Sealed like the API seals them (ombaro/identity/accounts.py): the context binds a value to its row.
SEALED_BANK_DETAILS = {"therapists": "therapists.bank_details", "employees": "employees.bank_details"}


def _seal_bank_details(rows: dict[str, list[Row]], keys: Mapping[str, bytes], key_id: str) -> None:
    """Seal every demo row's bank details in place. The nonce is derived from the key, the context
    and the plaintext (not drawn at random) so the same seed still gives identical rows; a nonce
    repeats only for an identical value of the same row, which then seals to the same ciphertext."""
    key = keys[key_id]
    for table, context_prefix in SEALED_BANK_DETAILS.items():
        for row in rows.get(table, []):
            details = row.get("bank_details")
            if not details or crypto.is_sealed(details):
                continue
            context = f"{context_prefix}:{row['id']}"
            plaintext = json.dumps(details, sort_keys=True).encode()
            nonce = hmac.new(key, context.encode() + b"\0" + plaintext, hashlib.sha256).digest()[:12]
            row["bank_details"] = crypto.seal(details, keys=keys, key_id=key_id, context=context,
                                              nonce=nonce)


DEMO_PASSWORD = "ombaro-demo-2026"  # development data only; printed by `ombaro seed --demo`


def enable_demo_logins(conn: sa.Connection, *, password: str = DEMO_PASSWORD) -> list[tuple[str, str]]:
    """Give one demo account of each role present a known password (and add a super admin), so a
    person trying the engine can log in as finance, HR, a vendor, a customer... Returns (email, role)."""
    from sqlalchemy.orm import Session

    from ombaro.identity import accounts, passwords

    session = Session(bind=conn)
    if not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM user_profiles WHERE role = 'super_admin')")).scalar():
        user = accounts._new_user(session, email="super.admin@ombaro.test", mobile="+919000000001",
                                  password=password, name="Super Admin", role="super_admin")
        session.flush()
        conn.execute(sa.text("INSERT INTO employees (id, employee_code, name, email, mobile, department, "
                             "designation, joining_date) VALUES (:id, 'EMP9999', 'Super Admin', :email, "
                             "'+919000000001', 'management', 'Platform Administrator', '2024-04-01')"),
                     {"id": user.id, "email": user.email})
    chosen = conn.execute(sa.text(
        "SELECT DISTINCT ON (p.role) u.id, u.email, p.role FROM user_profiles p JOIN auth.users u ON u.id = p.id "
        "WHERE p.status = 'active' ORDER BY p.role, u.email")).all()
    hashed = passwords.hash_password(password)
    conn.execute(sa.text("UPDATE auth.users SET encrypted_password = :h WHERE id = ANY(:ids)"),
                 {"h": hashed, "ids": [row.id for row in chosen]})
    return [(row.email, row.role) for row in chosen]
