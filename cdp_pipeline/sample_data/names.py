"""Name, street and catalogue pools for the sample population.

Every value is invented. The pools reflect Antwerp's mix of origins so that identity
resolution meets the same spelling problems it meets on the real exports: particles,
diacritics, transliterations and nicknames.
"""

# Origin of a household and its weight in the population. Weights roughly follow the
# city's mix; "other" stands for the many smaller communities.
ORIGINS: tuple[tuple[str, float], ...] = (
    ("flemish", 0.55),
    ("moroccan", 0.16),
    ("turkish", 0.07),
    ("french", 0.06),
    ("polish", 0.05),
    ("jewish", 0.04),
    ("other", 0.07),
)

# Adult first names per origin and gender: (canonical, informal variants). The canonical
# form is what an official register (A-profiel) holds; the variants are nicknames or
# other transliterations people type into webshops and forms.
FIRST_NAMES: dict[str, dict[str, list[tuple[str, tuple[str, ...]]]]] = {
    "flemish": {
        "M": [
            ("Johannes", ("Jan", "Hans")), ("Jan", ()), ("Petrus", ("Piet", "Peter")),
            ("Pieter", ("Piet",)), ("Wilhelmus", ("Wim",)), ("Josephus", ("Jos", "Jef")),
            ("Cornelis", ("Kees", "Cor")), ("Hendrik", ("Henk", "Rik")),
            ("Theodoor", ("Theo",)), ("Bart", ()), ("Tom", ()), ("Thomas", ("Tom",)),
            ("Wouter", ()), ("Koen", ()), ("Stijn", ()), ("Kristof", ("Kris",)),
            ("Jeroen", ()), ("Dirk", ()), ("Geert", ()), ("Steven", ("Steve",)),
            ("Frederik", ("Frederic", "Fred")), ("Jozef", ("Jef", "Jos")), ("Lars", ()),
            ("Wout", ()), ("Maarten", ()), ("Nicolaas", ("Nico", "Klaas")), ("Dries", ()),
            ("Ruben", ()), ("Sander", ()), ("Bram", ()), ("Jonas", ()), ("Arne", ()),
        ],
        "F": [
            ("Elisabeth", ("Liesbeth", "Lies", "Els")), ("Catharina", ("Katrien", "Trien")),
            ("Maria", ("Mieke", "Marie")), ("Anna", ("An", "Anneke")), ("An", ()),
            ("Margriet", ("Griet",)), ("Johanna", ("Hanne", "Jo")), ("Veerle", ()),
            ("Hilde", ()), ("Sofie", ("Sophie",)), ("Lotte", ()), ("Annelies", ("Lies",)),
            ("Nele", ()), ("Inge", ()), ("Ellen", ()), ("Sara", ("Sarah",)), ("Eline", ()),
            ("Katrien", ()), ("Liesbeth", ("Lies",)), ("Karolien", ("Caroline",)),
            ("Evelien", ("Eva",)), ("Kathleen", ("Kathy",)), ("Leen", ()), ("Femke", ()),
            ("Joke", ()), ("Ilse", ()), ("Tine", ()), ("Wendy", ()), ("Heidi", ()),
        ],
    },
    "french": {
        "M": [
            ("François", ("Francois", "Frans")), ("Jérôme", ("Jerome",)),
            ("Frédéric", ("Frederic", "Fred")), ("Benoît", ("Benoit",)), ("Noël", ("Noel",)),
            ("Étienne", ("Etienne",)), ("Olivier", ()), ("Guillaume", ()), ("Julien", ()),
            ("Mathieu", ("Matthieu",)), ("Sébastien", ("Sebastien", "Seb")),
        ],
        "F": [
            ("Hélène", ("Helene",)), ("Amélie", ("Amelie",)), ("Céline", ("Celine",)),
            ("Élodie", ("Elodie",)), ("Geneviève", ("Genevieve",)), ("Chloé", ("Chloe",)),
            ("Aurélie", ("Aurelie",)), ("Mélanie", ("Melanie",)), ("Isabelle", ("Isa",)),
            ("Stéphanie", ("Stephanie", "Steph")), ("Nathalie", ()),
        ],
    },
    "moroccan": {
        "M": [
            ("Mohammed", ("Mo", "Mohamed", "Muhammad")), ("Mohamed", ("Mo", "Mohammed")),
            ("Youssef", ("Yusuf", "Youssouf")), ("Ayoub", ()), ("Bilal", ()), ("Hamza", ()),
            ("Amine", ("Amin",)), ("Soufiane", ("Sofiane",)), ("Rachid", ("Rashid",)),
            ("Abdelkader", ("Kader",)), ("Mustafa", ("Moustapha",)), ("Said", ("Saïd",)),
            ("Ilias", ("Ilyas",)), ("Anas", ()), ("Khalid", ("Khaled",)),
        ],
        "F": [
            ("Fatima", ("Fatma", "Fadma")), ("Khadija", ("Khadidja",)), ("Salma", ()),
            ("Imane", ("Iman",)), ("Nadia", ()), ("Yasmina", ("Yasmine",)), ("Sara", ()),
            ("Nora", ()), ("Meryem", ("Maryam", "Mariam")), ("Hafsa", ()), ("Loubna", ()),
            ("Samira", ()), ("Zineb", ("Zainab",)), ("Hanane", ()), ("Ikram", ()),
        ],
    },
    "turkish": {
        "M": [
            ("Mehmet", ("Memet",)), ("Emre", ()), ("Murat", ()), ("Hakan", ()), ("Fatih", ()),
            ("Burak", ()), ("Mustafa", ()), ("Ömer", ("Omer",)), ("Hüseyin", ("Huseyin",)),
            ("Serkan", ()), ("Kemal", ()),
        ],
        "F": [
            ("Elif", ()), ("Zeynep", ()), ("Ayşe", ("Ayse",)), ("Büşra", ("Busra",)),
            ("Özlem", ("Ozlem",)), ("Emine", ()), ("Merve", ()), ("Esra", ()),
            ("Gülsüm", ("Gulsum",)), ("Sevgi", ()), ("Derya", ()),
        ],
    },
    "polish": {
        "M": [
            ("Piotr", ("Peter",)), ("Tomasz", ("Tomek",)), ("Krzysztof", ("Krzysiek",)),
            ("Paweł", ("Pawel",)), ("Łukasz", ("Lukasz",)), ("Marcin", ()),
            ("Grzegorz", ("Grzesiek",)), ("Michał", ("Michal",)), ("Jakub", ("Kuba",)),
        ],
        "F": [
            ("Katarzyna", ("Kasia",)), ("Małgorzata", ("Gosia", "Malgorzata")),
            ("Agnieszka", ("Aga",)), ("Anna", ("Ania",)), ("Magdalena", ("Magda",)),
            ("Joanna", ("Asia",)), ("Aleksandra", ("Ola",)), ("Monika", ()),
            ("Ewa", ()), ("Dorota", ()),
        ],
    },
    "jewish": {
        "M": [
            ("Moshe", ("Moishe", "Mozes")), ("Yosef", ("Yossi", "Josef")), ("Chaim", ()),
            ("Avraham", ("Avi", "Abraham")), ("Shmuel", ("Samuel",)),
            ("Yaakov", ("Yankel", "Jacob")), ("Mendel", ()), ("Yitzchak", ("Itzik",)),
            ("Aron", ("Aharon",)), ("Baruch", ()),
        ],
        "F": [
            ("Rivka", ("Rivky",)), ("Chana", ("Hannah",)), ("Sarah", ("Suri",)),
            ("Esther", ("Esty",)), ("Leah", ("Lea",)), ("Miriam", ("Miri",)),
            ("Devorah", ("Devory",)), ("Rachel", ("Ruchy",)), ("Malka", ()), ("Feiga", ()),
        ],
    },
    "other": {
        "M": [
            ("João", ("Joao",)), ("Andrei", ()), ("Kabongo", ()), ("José", ("Jose",)),
            ("Dmytro", ("Dima",)), ("Ahmad", ("Ahmed",)), ("Samuel", ("Sam",)),
            ("Arjun", ()), ("Carlos", ()), ("Emmanuel", ("Manu",)),
        ],
        "F": [
            ("Ana", ()), ("Olena", ("Lena",)), ("Grace", ()), ("María", ("Maria",)),
            ("Ioana", ()), ("Priya", ()), ("Beatriz", ("Bia",)), ("Amani", ()),
            ("Nadiya", ("Nadia",)), ("Lucía", ("Lucia",)),
        ],
    },
}

# Children's first names: newer generations share a common pool across origins, with a
# few origin-specific names mixed in by the generator.
CHILD_NAMES: dict[str, list[str]] = {
    "M": [
        "Lucas", "Liam", "Arthur", "Jules", "Finn", "Vic", "Adam", "Louis", "Noah", "Mats",
        "Mathéo", "Rayan", "Amir", "Yusuf", "Emir", "Kacper", "Levi", "Elias", "Seppe", "Lowie",
        "Warre", "Otis", "Nathan", "Ilyas", "Shmuel", "Mendy", "Lander", "Kobe", "Daan", "Tuur",
    ],
    "F": [
        "Noor", "Louise", "Elena", "Mila", "Olivia", "Lou", "Juliette", "Ella", "Nore", "Marie",
        "Zoë", "Chloé", "Lina", "Amira", "Yara", "Inaya", "Zeynep", "Zofia", "Hanna", "Liv",
        "Fien", "Lotte", "Emma", "Sara", "Rivky", "Chaya", "Jade", "Anaïs", "Nina", "Febe",
    ],
}

# Family names per origin. Gendered Polish names are stored as (masculine, feminine).
LAST_NAMES: dict[str, list[str]] = {
    "flemish": [
        "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
        "Wouters", "De Smet", "Van den Broeck", "Van de Velde", "Vermeulen", "Van Damme",
        "De Backer", "Verhoeven", "Van Dyck", "De Clercq", "Hermans", "Aerts", "Michiels",
        "Van Acker", "Smets", "Lambrechts", "Van Hoof", "De Vos", "Van Gorp", "Segers",
        "Claessens", "Cools", "Verstraeten", "Van Looy", "De Wit", "Van der Veken",
        "Van den Bossche", "De Cock", "Van Rompaey", "Op de Beeck", "Van de Walle", "Dierckx",
        "Verbruggen", "Van Camp", "De Ridder", "Van Genechten", "Huybrechts", "Van Aelst",
        "Verschueren", "De Meyer", "Van Hove", "Nuyts", "Thys", "Geerts", "Bogaerts",
    ],
    "french": [
        "Dubois", "Lambert", "Dupont", "Lefèvre", "Martin", "Leclercq", "Laurent", "Lejeune",
        "Renard", "Mercier", "François", "Dumont", "Gérard", "Lemaître", "De la Croix",
        "Le Clercq", "Du Pré",
    ],
    "moroccan": [
        "El Amrani", "Benali", "El Idrissi", "Bouzid", "Ait Taleb", "El Khattabi", "Azzouzi",
        "Amrani", "Haddouchi", "Boukhari", "Ouali", "Cherkaoui", "El Ouardi", "Belhaj",
        "Ben Ali", "El Mokhtari", "Bouazza", "Zerouali", "El Hamdaoui", "Achahbar",
    ],
    "turkish": [
        "Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Aydın", "Arslan", "Doğan",
        "Koç", "Yıldız", "Kılıç", "Özdemir", "Aksoy",
    ],
    "polish": [
        "Kowalski", "Nowak", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński",
        "Dąbrowski", "Szymański", "Woźniak", "Mazur", "Krawczyk",
    ],
    "jewish": [
        "Friedman", "Rosenberg", "Klein", "Schwartz", "Weiss", "Goldstein", "Gutman",
        "Lieberman", "Kahan", "Grunfeld", "Teitelbaum", "Stern", "Rosenfeld", "Halberstam",
    ],
    "other": [
        "Silva", "Garcia", "Popescu", "Kovalenko", "Mukendi", "Kabila", "Fernandes", "Singh",
        "Rodríguez", "Ionescu", "Mensah", "Haddad", "Shevchenko", "Costa",
    ],
}

# Lower-case particles that Flemish, French and Arabic family names start with. A name
# starting with one of these is written three ways across systems.
PARTICLES: frozenset[str] = frozenset(
    {"van", "de", "den", "der", "op", "la", "le", "du", "el", "ben", "ait"}
)

# Postcode → (municipality as the register writes it, street names, weight). Weights put
# most people in the city proper and its districts, a minority just outside.
POSTCODES: list[tuple[str, str, tuple[str, ...], float]] = [
    ("2000", "Antwerpen", ("Lange Nieuwstraat", "Meir", "Hoogstraat", "Kammenstraat",
                           "Oudaan", "Nationalestraat", "Kloosterstraat"), 0.09),
    ("2018", "Antwerpen", ("Lange Kievitstraat", "Belgiëlei", "Mercatorstraat",
                           "Lange Leemstraat", "Van Eycklei", "Simonsstraat"), 0.09),
    ("2020", "Antwerpen", ("Abdijstraat", "Sint-Bernardsesteenweg", "Boomsesteenweg",
                           "Kielsevest"), 0.06),
    ("2030", "Antwerpen", ("Luchtbal", "Columbiastraat", "Noorderlaan"), 0.02),
    ("2040", "Antwerpen", ("Monnikenhofstraat", "Dorpsstraat"), 0.01),
    ("2050", "Antwerpen", ("Blancefloerlaan", "Frederik van Eedenplein",
                           "Gloriantlaan"), 0.04),
    ("2060", "Antwerpen", ("Handelstraat", "Dambruggestraat", "Kerkstraat",
                           "Lange Beeldekensstraat", "Offerandestraat"), 0.08),
    ("2100", "Deurne", ("Herentalsebaan", "Bisschoppenhoflaan", "Lakborslei",
                        "Ter Heydelaan"), 0.09),
    ("2140", "Borgerhout", ("Turnhoutsebaan", "Kroonstraat", "Collegelaan",
                            "Karel de Preter"), 0.07),
    ("2170", "Merksem", ("Bredabaan", "Ternesselei", "Terlindenhofstraat"), 0.05),
    ("2180", "Ekeren", ("Kapelsestraat", "Veltwijcklaan", "Prinshoeveweg"), 0.04),
    ("2600", "Berchem", ("Driekoningenstraat", "Grote Steenweg", "Statiestraat",
                         "Uitbreidingstraat"), 0.07),
    ("2610", "Wilrijk", ("Boomsesteenweg", "Kleine Doornstraat", "Oosterveldlaan"), 0.05),
    ("2660", "Hoboken", ("Kioskplaats", "Sint-Bernardsesteenweg", "Kapelstraat"), 0.05),
    ("2640", "Mortsel", ("Mechelsesteenweg", "Statielei"), 0.03),
    ("2650", "Edegem", ("Prins Boudewijnlaan", "Strijdersstraat"), 0.02),
    ("2900", "Schoten", ("Paalstraat", "Brechtsebaan"), 0.02),
    ("2950", "Kapellen", ("Dorpsstraat", "Hoevensebaan"), 0.01),
    ("2800", "Mechelen", ("Bruul", "Hoogstraat"), 0.01),
    ("9000", "Gent", ("Veldstraat", "Overpoortstraat"), 0.005),
    ("1000", "Brussel", ("Rue Neuve", "Avenue Louise"), 0.005),
]

# Postcodes an Orthodox Jewish household most likely lives in (the diamond district).
JEWISH_POSTCODES: tuple[str, ...] = ("2018", "2018", "2018", "2600", "2000")

EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 0.38), ("telenet.be", 0.18), ("hotmail.com", 0.12), ("outlook.com", 0.07),
    ("skynet.be", 0.05), ("proximus.be", 0.04), ("yahoo.com", 0.04), ("icloud.com", 0.05),
    ("live.be", 0.03), ("hotmail.be", 0.04),
)

# Addresses box-office staff type to get past a mandatory e-mail field. They are shared
# by strangers and must never link them.
PLACEHOLDER_EMAILS: tuple[str, ...] = (
    "geen@email.be", "test@test.be", "x@x.x", "noreply@antwerpen.be", "geen@geen.be",
    "noreply@ticketshop.be", "nvt@nvt.be",
)

# Event catalogue: category → (venues, title stems, price range in EUR).
EVENT_CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[int, int]]] = {
    "concert": (("De Singel", "Koningin Elisabethzaal", "Trix", "Zuiderpershuis",
                 "Lotto Arena"),
                ("Jazz in de Singel", "Antwerp Symphony Orchestra", "Nachtconcert",
                 "Singer-songwriter avond", "Koorconcert", "Hiphop Night", "Fado & Flamenco",
                 "Barokensemble", "Orgelconcert Kathedraal"), (12, 65)),
    "theater": (("Stadsschouwburg", "Bourla", "Toneelhuis", "Fakkeltheater",
                 "Monty"), ("Hamlet", "De Kersentuin", "Stand-up comedy", "Musical Avond",
                            "Het Huis van Bernarda Alba", "Improvisatietheater"), (15, 55)),
    "dans": (("De Singel", "Stadsschouwburg", "Monty"),
             ("Hedendaagse dans", "Rosas", "Ballet van Vlaanderen", "Breakdance Battle"),
             (14, 48)),
    "familie": (("Het Paleis", "Zuiderpershuis", "Zoo Antwerpen", "MAS"),
                ("Kindervoorstelling", "Poppentheater", "Familieconcert", "Sinterklaasshow",
                 "Circusatelier"), (6, 18)),
    "expo": (("MAS", "M HKA", "KMSKA", "Rubenshuis", "FOMU", "Red Star Line Museum"),
             ("Tentoonstelling Rubens", "Fotografie van de haven", "Modemuseum expo",
              "Hedendaagse kunst", "Meesters van de Barok"), (8, 20)),
    "film": (("Cinema Zuid", "De Cinema", "Roma"),
             ("Filmklassieker", "Documentaire avond", "Openluchtcinema", "Kortfilmfestival"),
             (7, 12)),
    "sport": (("Sportpaleis", "Lotto Arena", "Bosuil", "Wezenberg", "Olympisch Stadion"),
              ("Antwerp Giants - Oostende", "Royal Antwerp FC", "Beerschot - Westerlo",
               "Diamond Games", "Zwemgala Wezenberg", "European Open tennis",
               "Stadsloop Antwerpen"), (10, 60)),
}

CULTURE_CATEGORIES: tuple[str, ...] = ("concert", "theater", "dans", "familie", "expo", "film")

NEWSLETTER_LISTS: tuple[str, ...] = ("cultuur", "sport", "jeugd", "stad")

USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
)

WEB_PAGES: tuple[tuple[str, str], ...] = (
    ("Home", "/"), ("Agenda", "/agenda"), ("Sport", "/sport"), ("Bibliotheek", "/bibliotheek"),
    ("Afval", "/afval"), ("Parkeren", "/parkeren"), ("Mijn profiel", "/mijn-profiel"),
    ("Vrije tijd", "/vrije-tijd"),
)

APP_SCREENS: tuple[str, ...] = (
    "Home", "Agenda", "Mijn tickets", "Afvalkalender", "Meldingen", "Parkeren",
)

REFERRERS: tuple[str, ...] = (
    "https://search.example/", "https://social.example/", "", "",
    "https://news.example/antwerpen", "https://www.antwerpen.be/",
)
