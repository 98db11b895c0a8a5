"""Spanish: which language a patient writes, what a Spanish text asks (in the words the parser reads), and the
rules engine's replies said in Spanish.

- ``detect(text)``: "es", "en" or None (neither: "Botox", "OK", "2", a name). Weighted word lists plus the letters
  only Spanish uses (ñ ¿ ¡ á í ó ú); a word both languages use ("no", "me", "a") counts for neither.
- ``conversation_language(current, text)``: a conversation keeps its language unless a text is clearly the other.
  Spanish is entered on one clear Spanish word ("hola", "si", "cuanto cuesta..."), left only for a text with at
  least two English words and no Spanish one, so "OK" or "yes" from a Spanish speaker does not flip it.
- ``to_parser_text(text)``: a Spanish text rewritten in the English words ``conversation.parsing`` reads ("cuanto
  cuesta el botox el jueves por la tarde" -> "how much is botox thursday afternoon"), names kept as written.
- ``reply_es(reply, tz, now)``: the rules engine's reply in Spanish, template by template (``TEMPLATES``), dates
  as "jue 3 dic, 1:30 PM EST". The clinic's own documents (knowledge answers) have no Spanish version and are
  quoted as they are; only the sentences around them are translated.

Spanish is written GSM-7-safe (no á í ó ú ¿ ¡, which would switch the text to UCS-2 and halve a segment; é and ñ
are GSM-7): see medspa/spanish.py.
"""

import re
import unicodedata
from datetime import datetime

from medspa.spanish import gsm7
from medspa.timetext import when_es, zone_label

ES, EN = "es", "en"


def _wordset(words: str) -> frozenset:
    return frozenset(words.split())


# Words that are Spanish and (in a patient's text) never English: weight 2.
ES_STRONG = _wordset(
    "hola buenas buenos dias tardes noches gracias quiero quisiera gustaria necesito cuanto cuanta cuestan cuesta "
    "precio precios cita citas tienen tiene puedo podria hacer quisiera si claro vale cancelar cancela reprogramar "
    "cambiar manana hoy lunes martes miercoles jueves viernes sabado domingo semana tarde noche mediodia ayuda "
    "usted ustedes ella ellos nosotros estoy estas esta eso esto favor llamo nombre embarazada seguro duele "
    "donde cuando porque tambien pero muy hay primera primero segunda segundo tercera tercero otra otro horario "
    "hora horas disponible disponibilidad agendar reservar apartar sacar depositar deposito pagar pago cuenta "
    "perfecto gusto bueno mejor despues antes ahora luego mismo cual cuales quien como porfa porfavor bien "
    "marte miercole jueve vierne sabao dnd tmb xq hacen ofrecen realizan hilos tensores kiero sita asen "
    "conosco nesesito aceptan acepta tarjeta tarjetas efectivo estacionamiento parqueo parqueadero mira aqui aki "
    "ablar ustede tengo preguntas pregunta mire estimados estimado"
)
# Short Spanish function words: weight 1 (two are needed, or one with a strong word).
ES_WEAK = _wordset("el la los las de del que mi mis una un es con por para al lo le se su sus tu y o")
EN_STRONG = _wordset(
    "the is are you your what whats how much want would like need can could book booking appointment appt "
    "thanks thank please hi hello hey yes yeah yep sure my im it its do does have when time times tomorrow today "
    "morning afternoon evening monday tuesday wednesday thursday friday saturday sunday cancel reschedule price "
    "cost there this that with for and of to in on at get any available next week first second third"
)
EN_WEAK = _wordset("i me we our be will")
SPANISH_LETTERS = frozenset("ñ¿¡áíóú")


def _fold(text: str) -> str:
    """Lower case without accents: "Mañana" -> "manana"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def scores(text: str) -> tuple[int, int]:
    """(Spanish, English) evidence in a text."""
    words = re.findall(r"[a-z]+", _fold(text or "").replace("'", ""))
    es = sum(2 if w in ES_STRONG else 1 if w in ES_WEAK else 0 for w in words)
    en = sum(2 if w in EN_STRONG else 1 if w in EN_WEAK else 0 for w in words)
    if SPANISH_LETTERS & set((text or "").lower()):
        es += 2
    return es, en


def detect(text: str) -> str | None:
    """ "es" or "en" when the text says which, None when it does not ("Botox", "OK", "2", "Maria Garcia")."""
    es, en = scores(text)
    if es >= 2 and es > en:
        return ES
    if en >= 2 and en > es:
        return EN
    return None


def conversation_language(current: str, text: str) -> str:
    """The language to answer in after ``text``: the conversation's own unless the text is clearly the other."""
    es, en = scores(text)
    if current != ES:
        return ES if es >= 2 and es > en else current
    return EN if en >= 4 and es == 0 else current


# --- Spanish in, the parser's English out ----------------------------------------------------------------------

_ACCENTED = {"a": "[aá]", "e": "[eé]", "i": "[ií]", "o": "[oó]", "u": "[uúü]", "n": "[nñ]"}


# The start of a text, after a greeting if it has one ("hola, ustedes hacen...?"): the greeting is kept as \1.
GREETED = r"^\s*((?:hola|buenas|buenos dias|buenas tardes|buenas noches)[\s,!.]+)?"


def _p(pattern: str) -> re.Pattern:
    """A pattern written without accents that matches the text with or without them, in any case."""
    out, in_set = [], False
    for ch in pattern:  # letters inside a [...] set stay as written (a set cannot nest)
        in_set = (in_set or ch == "[") and ch != "]"
        out.append(ch if in_set or ch == "]" else _ACCENTED.get(ch, ch))
    return re.compile("".join(out), re.IGNORECASE)


_FAMILY = {
    "mujer": "wife", "esposa": "wife", "esposo": "husband", "marido": "husband", "novia": "girlfriend",
    "novio": "boyfriend", "mama": "mom", "madre": "mother", "papa": "dad", "padre": "father", "hermana": "sister",
    "hermano": "brother", "amiga": "friend", "amigo": "friend", "hija": "daughter", "hijo": "son",
    "suegra": "mother in law", "prima": "cousin", "primo": "cousin",
}  # fmt: skip
# In order: longer phrases first. The right side is what conversation.parsing reads.
PHRASES = [
    (_p(r"[¿¡]"), " "),
    (_p(r"^\s*(disculpe|disculpa|perdon|perdone)\b[,.]?"), "sorry"),
    # Texting shorthand ("tmb dnd queda", "xq", "q hora"): the words, so the phrases below read them.
    (_p(r"\bdnd\b"), "donde"),
    (_p(r"\b(tmb|tmbn|tb)\b"), "tambien"),
    (_p(r"\bxq\b"), "porque"),
    (_p(r"\bq\b"), "que"),
    (_p(r"\bd\b"), "de"),
    (_p(r"\bm (sale|cuesta|duele|queda)\b"), r"me \1"),
    (_p(r"\btambien\b"), "also"),
    # Caribbean spelling: a dropped final s written as an apostrophe ("el jueve' ta bien", "quien e' este numero").
    (_p(r"\bpa'"), "para"),
    (_p(r"\bta'?(?= (bien|bueno|listo|perfecto|de)\b)"), "esta"),
    (_p(r"\bquien e'?(?= )"), "quien es"),
    (re.compile(r"\b([^\W\d_]{3,})[''](?=[\s.,!?]|$)"), r"\1s"),
    # Spelled as it sounds ("kiero cansalar mi sita", "ustedes asen implantes?"): the words, so the phrases below
    # read them.
    (_p(r"\bkiero\b"), "quiero"),
    (_p(r"\bablar\b"), "hablar"),
    (_p(r"\bustede\b"), "ustedes"),
    (_p(r"\b(una persona|alguien) de verda(d)?\b"), "una persona"),
    (_p(r"\b(nesesito|nececito|nesecito)\b"), "necesito"),
    (_p(r"\b(kisiera|quisiea)\b"), "quisiera"),
    (_p(r"\b(cansel|cansal|kansel|cancel)(ar|a|o|e|en)\b"), r"cancel\2"),
    (_p(r"\bsitas?\b"), lambda m: "citas" if m[0].lower().endswith("s") else "cita"),
    (_p(r"\basen\b"), "hacen"),
    (_p(r"\b(implantes?|injertos?) (de|del) (pelo|cabello)\b"), "trasplante de pelo"),
    # Urgent symptoms first: the urgent script must never miss them.
    (
        _p(
            r"\bno puedo respirar\b|\b(me )?(esta )?(cuesta|costando) respirar\b|\bdificultad (para|al) respirar\b|"
            r"\bfalta de aire\b|\bme ahogo\b|\bme falta el aire\b"
        ),
        "cant breathe",
    ),
    (
        _p(
            r"\b(piel|zona|labio|cara|mejilla)s? (se (me )?(puso|pone|esta poniendo|ve) |esta |mas )?"
            r"(blanc|moradit?|azul|gris)\w*"
        ),
        "skin turning white",
    ),
    (
        _p(
            r"\bdolor (muy )?(fuerte|intenso|horrible|insoportable)\b|\bmucho dolor\b|\bdolor severo\b|"
            r"\bme duele (muchisimo|mucho|demasiado|horrible)\b"
        ),
        "severe pain",
    ),
    (_p(r"\bse (me )?(puso|pone|esta poniendo|volvio|ve) (blanc|morad|azul|gris)\w*"), "skin turning white"),
    (_p(r"\bme desmaye\b|\bdesmayo\b|\bmareada? y\b"), "fainted"),
    (_p(r"\bno veo( bien)?\b|\bno puedo ver\b|\bvision borrosa\b|\bveo borroso\b"), "blurry vision"),
    (
        _p(r"\bcobr\w*\b.{0,30}\b(dos|2) veces\b|\bdoble cobro\b|\bcobro doble\b|\bcargo (duplicado|doble)\b"),
        "charged twice",
    ),
    (_p(r"\b(solicito|pido|quiero|necesito) (el |un |mi )?reembolso\b"), "refund me"),
    (
        _p(
            r"\b(estan|estais) contratando\b|\bbuscan personal\b|"
            r"\b(quiero|me encantaria) trabajar con (ustedes|vosotros)\b"
        ),
        "are you hiring",
    ),
    (_p(r"\btrasplante (capilar|de pelo|de cabello)\b"), "hair transplant"),
    (_p(r"\bextensiones de (pestanas|cejas)\b"), "lash extensions"),
    (_p(r"\b(manicur\w*|unas acrilicas|unas de gel)\b|\bu[ñ]as?\b"), "manicure"),  # "uñas", never "unas" (some)
    (_p(r"\bpedicur\w*\b"), "pedicure"),
    (_p(r"\bmasajes?\b"), "massages"),
    (_p(GREETED + r"(ustedes )?(dan|hacen|ofrecen|tienen)(?= massages)"), r"\1do you do"),
    (_p(r"\b(el |mi |los |mis )?(record|records|récord|récords) medicos?\b"), "my medical records"),
    (_p(r"\bme (puse|hice|inyecte|hicieron) (el |un |una |los |las )?"), "i had "),
    (
        _p(r"\bhace (\d+|un|una|dos|tres) (dias?|semanas?)\b"),
        lambda m: (
            f"{ {'un': '1', 'una': '1', 'dos': '2', 'tres': '3'}.get(m[1].lower(), m[1]) } "
            f"{'days' if m[2].lower().startswith('d') else 'weeks'} ago"
        ),
    ),
    (_p(r"\b(un )?moret[oó]n(es)?\b"), "a bruise"),
    (_p(r"\btapar(lo|la)? con maquillaje\b"), "cover it with makeup"),
    (_p(r"\bsi (tengo|tuviera|necesito|tendria|tuviese) que cancelar\b"), "if i have to cancel"),
    (_p(r"\bsi me (sale|surge|pasa) algo\b"), "if something comes up"),
    (_p(r"\b(tengo|tuviera|tendria) que cancelar\b"), "i have to cancel"),
    (_p(r"\b(se|me lo|lo|me la|la|me) (devuelve|devuelven|reembolsa|reembolsan|regresan)\b"), "do i get it back"),
    (
        _p(r"\b(a ?donde|donde) (se )?(parquea|estaciona|aparca|puedo parquear|puedo estacionar|podemos parquear)\b"),
        "where do i park",
    ),
    (_p(r"\b(no quiero|no quisiera) perder\b"), "i dont want to lose"),
    (_p(r"\b(todavia|aun|aún) no (entro|empiezo|estoy) (a|en) (trabajar|el trabajo)\b"), "im free then"),
    (_p(r"\bmejor (el |la )?(?=(lunes|martes|miercoles|jueves|viernes|sabado)\b)"), ""),
    (_p(r"(?<=\S)\s*,?\s*verdad\s*\?"), " right?"),
    (_p(r"\b(que|cuales) (dias|horarios|horas|fechas) (tienen|hay)( disponibles?| libres?)?\b"), "any openings"),
    (
        _p(r"^\s*(tienen|hay) (estacionamiento|parqueo|parqueadero|parking|aparcamiento|donde parquear)\b"),
        "is there parking",
    ),
    (_p(r"\b(estacionamiento|parqueo|parqueadero|aparcamiento)\b"), "parking"),
    (
        _p(r"\bdonde (queda|esta|estan|se encuentra|se ubica)n?\b( la clinica| el spa| ustedes| la oficina)?"),
        "where is the clinic",
    ),
    (_p(r"\bhay (donde|a donde|lugar para|sitio para) (parquear|estacionar|aparcar)\b"), "is there parking"),
    (_p(GREETED + r"(ustedes )?(aceptan|acepta|reciben|toman)\b"), r"\1do you accept"),
    (_p(r"\b(algun |algunos |un |unos )?plan(es)? de (pagos?|financiamiento|financiacion)\b"), "a payment plan"),
    (
        _p(r"\bpagar (en|a) (pagos|plazos|cuotas|mensualidades)\b|\bpagos mensuales\b|\ben cuotas\b"),
        "pay in a payment plan",
    ),
    (_p(r"^\s*(tienen|tiene|hay) algo (para|contra|que sirva para) "), "what do you recommend for "),
    (_p(r"(^|[?.!]\s*)se puede\b"), r"\1can i"),
    (_p(r"\b(financiamiento|financiacion)\b"), "financing"),
    (_p(r"\b(coger|tomar|agarrar) el (tren|metro|subway|t)\b"), "take the train"),
    (_p(r"\blifting de pestanas\b"), "lash lift"),
    # Someone else's appointment: "una cita para mi mujer"
    (
        _p(
            r"\bpara mi (mujer|esposa|esposo|marido|novia|novio|mama|madre|papa|padre|hermana|hermano|amiga|amigo|"
            r"hija|hijo|suegra|prima|primo)\b"
        ),
        lambda m: "for my " + _FAMILY[_fold(m[1])],
    ),
    (_p(r"\b(las )?varices\b|\b(las )?venas varicosas\b|\barañitas\b|\barañas vasculares\b"), "spider veins"),
    (_p(GREETED + r"(ustedes |vosotros )?(realizan|realizais|haceis|hacen|ofrecen)\b"), r"\1do you do"),
    (
        _p(
            r"\b(necesito|quiero) que alguien (lo |me )?(revise|llame|ayude|responda)\b|"
            r"\bque alguien (lo |me )?revise\b"
        ),
        "can someone check",
    ),
    (_p(r"\bdolor (de|en el) pecho\b"), "chest pain"),
    # What only staff can do (conversation.rules STAFF_ONLY reads the English).
    (
        _p(
            r"\b(copia de )?(mi |el )?(expediente|historial|historia clinica|registros?(?! contables?| de pago))"
            r"( medicos?| clinicos?)?\b"
        ),
        "my medical records",
    ),
    (_p(r"\b(quiero|necesito) (mi |el |un )?reembolso\b|\bno me (han )?(devuelto|reembolsado)\b"), "refund me"),
    (_p(r"\b(estoy |quede )?(muy )?(descontent[oa]|insatisfech[oa]|molest[oa])\b"), "unhappy with it"),
    (
        _p(r"\bme (trato|trataron|atendio|atendieron) (muy )?(mal|malisimo|fatal|horrible|pesimo)\b"),
        "not happy with how",
    ),
    (
        _p(r"\bhablar con (el |la |un |una )?(manager|gerente|encargad[oa]|supervisora?|duen[oa]|jef[ea])\b"),
        "talk to a manager",
    ),
    (_p(r"\b(me )?cobraron (doble|dos veces)\b|\bcobro doble\b"), "charged twice"),
    (_p(r"\b(devuelvan|regresen|reembolsen) (el|mi|la|mis) (dinero|pisto|plata|lana|pago)\b"), "money back"),
    (_p(r"\btoxina botulinica\b"), "botox"),
    (_p(r"\b(que|cual) profesional\b|\bquien (realiza|hace|aplica|pone|inyecta)\b"), "who does"),
    (_p(r"\bhilos( tensores)?( de polidioxanona)?\b"), "pdo threads"),
    (_p(r"\breaccion alergica\b"), "allergic reaction"),
    (_p(r"\bemergencia\b"), "emergency"),
    (_p(r"\bfiebre\b"), "fever"),
    (_p(r"\binfecci?on\b|\binfectad[oa]\b"), "infection"),
    (_p(r"\burticaria\b|\bronchas\b"), "hives"),
    (_p(r"\bcada vez (peor|mas hinchad[oa])\b|\bempeorando\b"), "getting worse"),
    (_p(r"\b(se (me )?)?(va|esta) extendiendo\b|\bse (me )?extiende\b"), "redness spreading"),
    (_p(r"\b(tengo|me (salieron|salio|han salido)|con) ampollas\b"), "got blisters"),
    (_p(r"^\s*y\b"), "and"),
    (_p(r"\b(el )?deposito que (pague|di|deje|hice)\b"), "the deposit i paid"),
    (
        _p(r"\bse (pasa|transfiere|mueve|aplica|queda) (a|para|en) la (nueva|otra) cita\b"),
        "does it carry over to my new time",
    ),
    (
        _p(r"\bsueroterapia\b|\b(suero|sueros|goteo)s? (de |con )?vitaminas?\b|\b(las |el |los )?iv de vitaminas?\b"),
        "iv vitamin drip",
    ),
    # A person, the name.
    (_p(r"\b(hablar|comunicarme) con (una persona|alguien|un humano|la recepcion|recepcion)\b"), "talk to a person"),
    (_p(r"\b(llamenme|llameme|llamame|me pueden llamar|me puede llamar)\b"), "call me"),
    (_p(r"\b(me llamo|mi nombre es)\b"), "my name is"),
    (_p(r"^\s*soy\b"), "my name is"),
    # Treatments, in the names a catalog gives them (catalogs are in English; a clinic's aliases still apply).
    (_p(r"\brellenos? (de |en (los )?|para (los )?)labios\b|\brelleno labial\b"), "lip filler"),
    (_p(r"\bdepilacion( con| por| a)? laser\b|\blaser (para|de) (el )?vello\b"), "laser hair removal"),
    (_p(r"\bpeeling( quimico)?\b|\bexfoliacion quimica\b"), "chemical peel"),
    (_p(r"\brellenos?( dermicos?| faciales)?\b"), "dermal filler"),
    (_p(r"\blimpieza facial\b|\bhidrafacial\b|\bfacial\b"), "hydrafacial"),
    (_p(r"\bmicroagujas\b|\bmicropuncion\b"), "microneedling"),
    (_p(r"\bpapada\b"), "double chin"),
    (_p(r"\bmanchas?( del sol| de sol| oscuras| en la (cara|piel))?\b"), "sun damage dark spots"),
    (_p(r"\bsesiones\b"), "sessions"),
    (_p(r"\bsesion\b"), "session"),
    (_p(r"\bconsulta( gratis| gratuita)?\b"), "consultation"),
    # Prices.
    (_p(r"\bcuanto (tiempo )?(me |le |te )?duran?\b"), "how long does it last"),
    (_p(r"\bcada cuanto( tiempo)?\b"), "how often"),
    (_p(r"\bcuanto (me )?(cuesta|cuestan|vale|valen|sale|salen|cobran|es)\b"), "how much is"),
    (_p(r"\b(que|cual es el) precio\b"), "price"),
    (_p(r"\bprecios?\b"), "price"),
    (_p(r"\bcostos?\b"), "cost"),
    (_p(r"\bcuanto\b"), "how much"),
    # Cancel, move, book.
    (_p(r"\bno (la |lo )?cancel(e|es|en|ar)\b"), "dont cancel"),
    (_p(r"\b(quiero |quisiera |necesito )?cancelar (mi|la) cita\b"), "cancel my appointment"),
    (_p(r"\bcancel(ar|a|e|en)(la|lo)?\b|\banul(ar|o|e|en)(la|lo)?\b"), "cancel"),
    (_p(r"\b(cambiar|mover|reprogramar) (mi|la) cita\b"), "reschedule my appointment"),
    (_p(r"\breprogramar\b"), "reschedule"),
    (_p(r"^\s*(cambiar|cambiarla|mover|moverla|cambiela|muevala)\s*[.!]*\s*$"), "move"),
    (_p(r"\b(otra|una segunda|segunda) cita\b"), "another appointment"),
    (_p(r"^\s*otra\s*[.!]*\s*$"), "another"),
    (_p(r"\b(otro dia|otra fecha|otro horario|otra hora)\b"), "another day"),
    (_p(r"\b(hacer|sacar|agendar|programar|reservar|apartar|pedir|pedirle) (una )?cita\b"), "book an appointment"),
    (_p(r"\b(agendar|reservar|apartar)(me)?\b"), "book"),
    (
        _p(r"\b(quiero|quisiera|me gustaria|necesito|deseo) (saber|preguntar|consultar|informacion)\b"),
        "i would like to know",
    ),
    (_p(r"\b(quiero|quisiera|me gustaria|necesito|deseo)\b"), "i want"),
    (_p(r"\b(tiene|tengo|tienes) (1[0-9]|[1-9])( anos| años)?\b"), r"is \2 years old"),  # "mi hija tiene 15"
    (_p(r"\b(tienen|tiene|hay) (algo|espacio|lugar|citas?|disponibilidad|horarios?)\b"), "do you have anything"),
    (_p(r"\b(tienen|tiene)\b"), "do you have"),
    (_p(r"\bdisponibilidad\b|\bdisponibles?\b"), "available"),
    (_p(r"\blo (antes|mas pronto) posible\b|\blo mas pronto\b"), "soonest"),
    (_p(r"\b(mi|la) cita\b"), "my appointment"),
    (_p(r"\buna cita\b|\bcita\b"), "an appointment"),
    # Times.
    (_p(r"\bmanana (por|en|de) la manana\b"), "tomorrow morning"),
    (_p(r"\b(por|en|de) la manana\b"), "morning"),
    (_p(r"\b(por|en|de) la tarde\b"), "afternoon"),
    (_p(r"\b(por|en|de) la noche\b"), "evening"),
    (_p(r"\bpasado manana\b"), "day after tomorrow"),
    (_p(r"\bmanana\b"), "tomorrow"),
    (_p(r"\bhoy\b"), "today"),
    (_p(r"\b(la )?(proxima semana|semana que viene)\b"), "next week"),
    (_p(r"\besta semana\b"), "this week"),
    (_p(r"\bfin de semana\b"), "weekend"),
    (_p(r"\bdespues de las? (\d)"), r"after \1"),
    (_p(r"\bantes de las? (\d)"), r"before \1"),
    (_p(r"\ba las? una\b"), "at 1"),
    (_p(r"\ba las? dos\b"), "at 2"),
    (_p(r"\ba las? tres\b"), "at 3"),
    (_p(r"\ba las? cuatro\b"), "at 4"),
    (_p(r"\ba las? cinco\b"), "at 5"),
    (_p(r"\ba las? seis\b"), "at 6"),
    (_p(r"\ba las? siete\b"), "at 7"),
    (_p(r"\ba las? ocho\b"), "at 8"),
    (_p(r"\ba las? nueve\b"), "at 9"),
    (_p(r"\ba las? diez\b"), "at 10"),
    (_p(r"\ba las? once\b"), "at 11"),
    (_p(r"\ba las? doce\b"), "at 12"),
    (_p(r"\ba las? (\d)"), r"at \1"),
    (_p(r"\b(el |este |el proximo )?lunes\b"), "monday"),
    (_p(r"\b(el |este |el proximo )?martes\b"), "tuesday"),
    (_p(r"\b(el |este |el proximo )?miercoles\b"), "wednesday"),
    (_p(r"\b(el |este |el proximo )?jueves\b"), "thursday"),
    (_p(r"\b(el |este |el proximo )?viernes\b"), "friday"),
    (_p(r"\b(el |este |el proximo )?sabado\b"), "saturday"),
    (_p(r"\b(el |este |el proximo )?domingo\b"), "sunday"),
    # Picks.
    (_p(r"\b(el|la) (primer[oa]|1)\b|\bprimer[oa]\b"), "the first"),
    (_p(r"\b(el|la) (segund[oa]|2)\b|\bsegund[oa]\b"), "the second"),
    (_p(r"\b(el|la) (tercer[oa]|3)\b|\btercer[oa]\b"), "the third"),
    (_p(r"\bningun[oa]\b"), "none"),
    # Questions about the clinic (the answer is the clinic's own document, in English).
    (_p(r"\bembarazada\b"), "pregnant"),
    (_p(r"\bhija\b"), "daughter"),
    (_p(r"\bhijo\b"), "son"),
    (_p(r"\b(ninos|niños|hijos)\b"), "kids"),
    (_p(r"\b(de )?(\d{1,2}) anos\b|\b(de )?(\d{1,2}) años\b"), r"\2\4 years old"),
    (_p(r"\b(amamantando|lactando|lactancia|dando pecho)\b"), "breastfeeding"),
    (_p(r"\bes seguro\b"), "is it safe"),
    (_p(r"\ba que hora\b"), "what time"),
    (_p(r"\b(cierran|cierra)\b"), "close"),
    (_p(r"\b(abren|abre)\b"), "open"),
    (_p(r"\bduele\b"), "does it hurt"),
    (_p(r"\b(en )?efectivo\b"), "cash"),
    (_p(r"\b(el )?seguro (medico)?\b|\baseguranza\b"), "insurance"),
    (_p(r"\btarjetas?( de credito)?\b"), "card"),
    (
        _p(r"\b(financiamiento|financiacion|pagos mensuales|pagar (a|en) (plazos|cuotas|mensualidades)|a plazos)\b"),
        "financing",
    ),
    (_p(r"\b(ustedes )?(quitan|eliminan|remueven|borran) (los |las )?tatuajes\b"), "do you do tattoo removal"),
    (_p(r"\btatuajes?\b"), "tattoo"),
    (_p(GREETED + r"(ustedes )?(hacen|ofrecen|tienen servicio de)\b"), r"\1do you do"),
    (_p(r"\bestacionamiento\b|\bparqueo\b"), "parking"),
    (_p(r"\b(estacionar(me)?|parquear|dejar el (carro|coche|auto))\b"), "park"),
    (_p(r"\b(hacer )?ejercicio\b"), "exercise"),
    (_p(r"\bgimnasio\b"), "gym"),
    (_p(r"\bque hay que hacer (despues|luego)\b"), "what should i do after"),
    (_p(r"\bdespues (de|del)\b"), "after"),
    (_p(r"\bantes (de|del)\b"), "before"),
    (_p(r"\b(me )?puedo\b"), "can i"),
    (_p(r"\b(que|qué) (debo|tengo que) (llevar|traer)\b"), "what should i bring"),
    (_p(r"^\s*(tengo|necesito) que (llevar|traer)\b"), "do i need to bring"),
    (_p(r"\b(llevar|traer)\b"), "bring"),
    (_p(r"\bidentificacion\b"), "id"),
    (
        _p(r"\bdonde (queda|esta|estan|quedan)( ubicad[oa]s?)?\b|\b(la )?(direccion|ubicacion)\b"),
        "where is the address",
    ),
    (_p(r"\b(el |en )?(tren|metro)\b"), "the T train"),
    (_p(r"\bdonde\b"), "where"),
    (_p(r"^\s*(que|como)\b"), "what"),
    (_p(r"\bpor favor\b|\bporfa(vor)?\b|\bsi no es (mucha )?molestia\b"), "please"),
    # Yes, no, greetings, thanks ("si" is "yes" first in a text, "if" inside one).
    (_p(r"^\s*(si|claro|vale|de acuerdo|dale|esta bien|perfecto|correcto|por supuesto)\b"), "yes"),
    (_p(r"\bsi\b"), "if"),
    (_p(r"\b(muchas )?gracias\b"), "thanks"),
    (_p(r"\bnos vemos\b|\bhasta (el|la|luego|pronto|entonces)\b"), "see you"),
    (_p(r"\b(hola|buenos dias|buenas tardes|buenas noches|buenas)\b"), "hi"),
    (_p(r"(?<=\S) y (?=\S)"), " and "),
    # "¿el depósito se descuenta del total?": a question about the deposit, not a price
    (
        _p(r"\bse (descuenta|resta|aplica|abona|rebaja) (del|al|en el) (total|precio|tratamiento)\b"),
        "is taken off the total",
    ),
    (_p(r"\b(el |mi |un |del )?deposito\b"), "the deposit"),
]


def to_parser_text(text: str) -> str:
    """A Spanish text in the words ``conversation.parsing`` reads; what it does not know is left as written."""
    for pattern, english in PHRASES:
        text = pattern.sub(english, text)
    return " ".join(text.split())


# --- The rules engine's English out, Spanish to the patient ----------------------------------------------------

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
# "Thu Dec 3, 1:30 PM ET" (medspa.timetext.when_label), as conversation.rules writes a time, or "Thu Dec 3 at 1:30
# PM"; a zone label after it, if any, is taken along.
# The zone label (medspa.timetext.zone_label): a name ("ET", "MST", "GMT") or an offset ("UTC-3", "UTC+5:30").
ZONE = r"[A-Z]{2,5}(?:[+-]\d{1,2}(?::\d\d)?)?"
WHEN = re.compile(rf"\b({_DAY}) ({_MONTH}) (\d{{1,2}})(?:,| at) (\d{{1,2}}):(\d\d) ([AP]M)(?: {ZONE}\b)?")
W = r"(?P<when>" + WHEN.pattern + r")"
W2 = r"(?P<new>" + WHEN.pattern + r")"  # a second time in the same text
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
UNITS = {"unit": "unidad", "syringe": "jeringa", "session": "sesion", "vial": "vial", "area": "zona"}


def _when(match: re.Match, tz, now: datetime) -> str:
    """The date and time in the text, rebuilt in the clinic's zone (the year: the one that puts it nearest now)."""
    _, month, day, hour, minute, ampm = match.groups()
    h = int(hour) % 12 + (12 if ampm == "PM" else 0)
    local_now = now.astimezone(tz)
    candidates = []
    for year in (local_now.year - 1, local_now.year, local_now.year + 1):
        try:
            candidates.append(datetime(year, _MONTHS.index(month) + 1, int(day), h, int(minute), tzinfo=tz))
        except ValueError:  # Feb 29 in a year without one
            continue
    return when_es(min(candidates, key=lambda d: abs(d - local_now)), tz)


def price_es(price: str) -> str:
    """A catalog price ("$12 per unit (most treatments use 20-30 units, about $240-$360)") said in Spanish."""
    if price == "priced at a consultation":
        return "se cotiza en una consulta"
    if price == "free":
        return "gratis"
    price = re.sub(
        r" \(most treatments use (\d+)-(\d+) (\w+?)s, about (\S+)\)",
        lambda m: (
            f" (la mayoria usa {m[1]}-{m[2]} {UNITS.get(m[3], m[3])}es, unos {m[4]})"
            if UNITS.get(m[3], m[3]).endswith("d")
            else f" (la mayoria usa {m[1]}-{m[2]} {UNITS.get(m[3], m[3])}s, unos {m[4]})"
        ),
        price,
    )
    return re.sub(r" per (\w+)", lambda m: f" por {UNITS.get(m[1], m[1])}", price)


def _pick(numbers: str) -> str:
    """ "Reply 1, 2 or 3" -> "Responda 1, 2 o 3"."""
    return numbers.replace(" or ", " o ")


# (English reply, as conversation.rules writes it; its Spanish). Matched on the whole reply, in order; {when},
# {price} and {pick} are re-rendered, the other groups (names, links, the clinic's documents) kept as they are.
BOOK_WHICH_ES = "Con gusto le hago una cita."  # how the question "which treatment, to book?" starts in Spanish
TEMPLATES = [
    (
        r"Hi! This is (?P<clinic>.+)\. I can answer questions, share prices or book you in\. What can I do\?",
        "Hola, le escribe {clinic}. Puedo responder sus preguntas, darle precios o hacerle una cita. En qué le "
        "puedo ayudar?",
    ),
    (
        r"Happy to help with prices! Which treatment\? We offer (?P<names>.+), and more\.",
        "Con gusto le doy precios. Qué tratamiento le interesa? Ofrecemos {names}, entre otros.",
    ),
    (
        r"I'd love to get you booked! Which treatment are you interested in\? For example: (?P<names>.+)\.",
        BOOK_WHICH_ES + " Qué tratamiento le interesa? Por ejemplo: {names}.",
    ),
    (
        r"(?P<lead>(?:.+ is .+\. )?)Here are open times for (?P<service>.+?):\n(?P<lines>(?:\d+\. .+\n)+)"
        r"Reply (?P<pick>[\d, or]+) to pick one(?P<tail>, or tell me a day that suits you\.|\.)",
        "{lead}Estos son los horarios disponibles para {service}:\n{lines}Responda {pick} para elegir uno{tail}",
    ),
    (r"Great choice! What name should I put the appointment under\?", "Excelente. A nombre de quién hago la cita?"),
    (
        r"Great choice: " + W + r" with (?P<provider>.+?)\. What name should I put the appointment under\?",
        "Excelente: {when} con {provider}. A nombre de quién hago la cita?",
    ),
    (
        r"Great! What name should I put the appointment under\?",
        "Perfecto. A nombre de quién hago la cita?",
    ),
    (
        r"No problem, I've switched it\. What name should I put the appointment under\?",
        "Listo, lo cambié. A nombre de quién hago la cita?",
    ),
    (
        r"Thanks, (?P<first>.+?)! I'm holding (?P<service>.+?) on " + W + r" with (?P<provider>.+?)"
        r"(?: until (?P<until>\d{1,2}:\d\d [AP]M(?: " + ZONE + r")?))?\. To confirm, please pay the (?P<amount>\S+) "
        r"deposit here: (?P<url>\S+)",
        "Gracias, {first}. Le aparto {service} el {when} con {provider}{until}. Para confirmar, pague el depósito "
        "de {amount} aquí: {url}",
    ),
    (
        r"Thanks! I've sent your (?P<service>.+?) on " + W + r" to our front desk to confirm; they'll text you "
        r"shortly\.",
        "Gracias. Envié su cita de {service} el {when} a nuestra recepción para confirmarla; le escribirán pronto.",
    ),
    (
        r"You're all set: (?P<service>.+?) on " + W + r" with (?P<provider>.+?)\. See you then!",
        "Listo, su cita está confirmada: {service} el {when} con {provider}. Lo esperamos.",
    ),
    (
        r"Reply YES to cancel your (?P<service>.+?) on " + W + r"(?:; your (?P<refund>\S+) deposit will be "
        r"refunded)?\. Or reply NO to keep it\.",
        "Responda SI para cancelar su cita de {service} del {when}{refund}. O responda NO para mantenerla.",
    ),
    (
        r"Done: your (?P<service>.+?) on " + W + r" is cancelled\.(?: Your (?P<refunded>\S+) deposit will be "
        r"refunded\.)? Want to pick another time\?",
        "Listo: su cita de {service} del {when} está cancelada.{refunded} Quiere elegir otro horario?",
    ),
    (
        r"Yes: you're cancelling more than (?P<hours>\d+) hours ahead, so your (?P<deposit>\S+) deposit will be "
        r"refunded to the card you paid with\. Reply YES to cancel your (?P<service>.+?) on " + W + r", or NO to keep "
        r"it\.",
        "Sí: cancela con más de {hours} horas de anticipación, así que se le reembolsará su depósito de {deposit} a la "
        "tarjeta con la que pagó. Responda SI para cancelar su cita de {service} del {when}, o NO para mantenerla.",
    ),
    (
        r"There's no deposit on this appointment, so cancelling costs nothing\. Reply YES to cancel your "
        r"(?P<service>.+?) on " + W + r", or NO to keep it\.",
        "Esta cita no tiene depósito: cancelarla no cuesta nada. Responda SI para cancelar su cita de {service} del "
        "{when}, o NO para mantenerla.",
    ),
    (r"I don't see an upcoming appointment for this number\.", "No veo ninguna cita próxima para este número."),
    (
        r"Yes: your (?P<deposit>\S+) deposit carried over to your (?P<service>.+?) on " + W + r": nothing more to pay "
        r"until your visit\.",
        "Sí: su depósito de {deposit} pasó a su cita de {service} del {when}: no hay nada más que pagar hasta su "
        "visita.",
    ),
    (
        r"No problem: your (?P<service>.+?) on " + W + r" stays booked\.",
        "Perfecto: su cita de {service} del {when} sigue en pie.",
    ),
    (
        r"No problem, I won't book anything\. Text me any time you'd like to find a time\.",
        "Perfecto, no reservo nada. Escríbame cuando quiera buscar un horario.",
    ),
    (
        r"Yes: your (?P<service>.+?) is on " + W + r" with (?P<provider>.+?)\. See you then!",
        "Sí: su cita de {service} es el {when} con {provider}. Lo esperamos.",
    ),
    (
        r"Your (?P<service>.+?) is on " + W + r" with (?P<provider>.+?)\. See you then!",
        "Su cita de {service} es el {when} con {provider}. Lo esperamos.",
    ),
    (
        r"Your (?P<service>.+?) on " + W + r" is with (?P<provider>.+?)\.",
        "Su cita de {service} del {when} es con {provider}.",
    ),
    (
        r"Done! Your (?P<service>.+?) is now " + W + r" with (?P<provider>.+?)\.(?P<carries> Your deposit carries "
        r"over\.)? See you then!",
        "Listo: su cita de {service} ahora es el {when} con {provider}.{carries} Lo esperamos.",
    ),
    (
        r"Sure! Your (?P<service>.+?) is on " + W + r"\. What day and time would work better\?",
        "Claro. Su cita de {service} es el {when}. Qué día y hora le convienen más?",
    ),
    (
        r"Sorry, which time works\? Reply (?P<pick>[\d, or]+), or tell me another day\.",
        "Disculpe, qué horario le conviene? Responda {pick}, o dígame otro día.",
    ),
    (
        r"I offered (?P<count>\d+) times: reply (?P<pick>[\d, or]+), or tell me another day\.",
        "Le ofrecí {count} horarios: responda {pick}, o dígame otro día.",
    ),
    (
        r"What day and time work best for your (?P<service>.+?)\? \(e\.g\. \"Thursday afternoon\"\)",
        'Qué día y hora le convienen para su {service}? (p. ej. "jueves por la tarde")',
    ),
    (
        r"Great, (?P<service>.+?)! What day and time work best for you\? \(e\.g\. \"Thursday afternoon\"\)",
        'Perfecto, {service}. Qué día y hora le convienen? (p. ej. "jueves por la tarde")',
    ),
    (
        r"No problem\. What day or time would work better for you\?",
        "Perfecto. Qué día u hora le convendría más?",
    ),
    (
        r"I don't see any (?P<service>.+?) openings (?P<label>.+?)\. Want me to check other days\?",
        "No veo horarios de {service} disponibles ({label}). Quiere que busque otros días?",
    ),
    # The waitlist: the question when nothing is open, the yes, and a no to a freed time it holds.
    (
        r"I don't see any (?P<service>.+?) openings (?P<label>.+?)\. Want me to text you if something opens .+?\? "
        r"Reply YES, or tell me another day\.",
        "No veo horarios de {service} disponibles ({label}). Quiere que le escriba si se abre uno? Responda SI, o "
        "dígame otro día.",
    ),
    (
        r"Done! I'll text you if a (?P<service>.+?) time opens (?P<label>.+?), and hold it for you for a few "
        r"minutes\. Or tell me another day that works\.",
        "Listo. Le escribiré si se abre un horario de {service} ({label}) y se lo apartaré unos minutos. O dígame "
        "otro día que le convenga.",
    ),
    (
        r"No problem, I've let that time go\. I'll keep you on the list in case another one opens\.",
        "Perfecto, ya liberé ese horario. Lo mantengo en la lista por si se abre otro.",
    ),
    (
        r"That overlaps your (?P<service>.+?) on " + W + r"\. Please pick another time\.",
        "Ese horario se cruza con su cita de {service} del {when}. Por favor elija otro horario.",
    ),
    (
        r"You already have (?P<service>.+?) on " + W + r"\. Reply MOVE to move it to " + W2 + r"\.",
        "Ya tiene una cita de {service} el {when}. Responda CAMBIAR para moverla al {new}.",
    ),
    (
        r"You already have (?P<service>.+?) on " + W + r"\. Reply MOVE to move it to " + W2 + r", or ANOTHER to book "
        r"a second appointment\.",
        "Ya tiene una cita de {service} el {when}. Responda CAMBIAR para moverla al {new}, u OTRA para hacer una "
        "segunda cita.",
    ),
    (r"You're welcome! Anything else I can help with\?", "Con gusto. Le ayudo con algo más?"),
    (r"Great! Anything else I can help with\?", "Perfecto. Le ayudo con algo más?"),
    (
        r"Great! Your (?P<service>.+?) on " + W + r" is confirmed once the deposit is paid with the link above\.",
        "Perfecto. Su cita de {service} del {when} queda confirmada al pagar el depósito con el enlace de arriba.",
    ),
    (r"Thanks, (?P<name>[^!]+)! Anything else I can help with\?", "Gracias, {name}. Le ayudo con algo más?"),
    (r"You're welcome! See you then\.", "Con gusto. Lo esperamos."),
    (
        r"Your (?P<paid>\$\S+) deposit for your (?P<service>.+?) on " + W + r" is paid: there's nothing more to pay "
        r"until your visit\.",
        "Su depósito de {paid} para su cita de {service} del {when} está pagado: no tiene que pagar nada más hasta "
        "su visita.",
    ),
    (
        r"Your (?P<service>.+?) on " + W + r" is booked, with no deposit to pay: the balance is due at your visit\.",
        "Su cita de {service} del {when} está reservada, sin depósito: el saldo se paga en su visita.",
    ),
    (
        r"Thanks for letting us know! I've told our front desk you're on your way\.",
        "Gracias por avisarnos. Ya le dije a nuestra recepción que viene en camino.",
    ),
    (
        r"Sorry, which time works\? Here are open times for (?P<service>.+?):\n(?P<lines>(?:\d+\. .+\n)+)"
        r"Reply (?P<pick>[\d, or]+) to pick one, or tell me another day\.",
        "Disculpe, qué horario le conviene? Estos son los horarios disponibles para {service}:\n{lines}Responda "
        "{pick} para elegir uno, o dígame otro día.",
    ),
    (
        r"I don't see any (?P<service>.+?) openings (?P<label>.+?)\. The nearest open times: "
        r"(?P<lines>(?:\d+\. .+\n)+)Reply (?P<pick>[\d, or]+) to pick one\.",
        "No veo horarios de {service} disponibles ({label}). Los más cercanos:\n{lines}Responda {pick} para elegir "
        "uno.",
    ),
    (
        r"Your (?P<amount>\$\S+ )?deposit carries over to the new time: nothing more to pay now\.(?: Reply "
        r"(?P<pick>[\d, or]+) to pick a new time\.)?",
        "Su depósito {amount}pasa a la nueva cita: no tiene que pagar nada más ahora.{picknew}",
    ),
    (
        r"Your appointment is less than (?P<hours>\d+) hours away, so our front desk will help you move it\. "
        r"They'll text you shortly\.",
        "Su cita es en menos de {hours} horas, así que nuestra recepción le ayudará a cambiarla. Le escribirán pronto.",
    ),
    (
        r"Yes, (?P<provider>.+?) does (?P<service>.+?)\. Would you like me to find you a time with (?P=provider)\?",
        "Sí, {provider} hace {service}. Quiere que le busque un horario con {provider}?",
    ),
    (
        r"(?P<provider>.+?) doesn't do (?P<service>.+?); (?P<others>.+?) does\. Would you like me to find you a "
        r"time\?",
        "{provider} no hace {service}; lo hace {others}. Quiere que le busque un horario?",
    ),
    (
        r"This is (?P<clinic>.+?), at (?P<address>.+?)\. We text about appointments: I can answer questions, share "
        r"prices or book you in\. Reply STOP to opt out\.",
        "Le escribe {clinic}, en {address}. Le enviamos mensajes sobre sus citas: puedo responder sus preguntas, darle "
        "precios o hacerle una cita. Responda ALTO para no recibir más mensajes.",
    ),
    (
        r"This is (?P<clinic>.+)\. We text about appointments: I can answer questions, share prices or book you in\. "
        r"Reply STOP to opt out\.",
        "Le escribe {clinic}. Le enviamos mensajes sobre sus citas: puedo responder sus preguntas, darle precios o "
        "hacerle una cita. Responda ALTO para no recibir más mensajes.",
    ),
    (
        r"Thanks for reaching out! I've passed this to our front desk, and someone will text you back shortly\.",
        "Gracias por escribirnos. Ya lo pasé a nuestra recepción y alguien le responderá pronto.",
    ),
    (
        r"Thanks! Our team has your message and will text you back here shortly\.",
        "Gracias. Nuestro equipo tiene su mensaje y le responderá por aquí pronto.",
    ),
    (
        r"Good question! I've asked our front desk, and someone will text you back shortly\.",
        "Buena pregunta. Ya le pregunté a nuestra recepción y alguien le responderá pronto.",
    ),
    (
        r"A (?P<service>.+?) appointment takes about (?P<minutes>\d+) minutes\.(?: Yours is on " + W + r" with "
        r"(?P<provider>.+?)\.)?",
        "Una cita de {service} dura unos {minutes} minutos.{yours}",
    ),
    (
        r"That isn't a treatment we offer, sorry\. Our treatments are (?P<names>.+)\. Would any of these interest "
        r"you\?",
        "Lo siento, no ofrecemos ese tratamiento. Nuestros tratamientos son {names}. Le interesa alguno?",
    ),
    (
        r"Good question! I don't have that information, so I've asked our team to get back to you shortly\.",
        "Buena pregunta. No tengo esa información, así que le pedí a nuestro equipo que le responda pronto.",
    ),
    (
        r"Of course! I've let our front desk know, and someone will text you back shortly\.",
        "Claro. Ya avisé a nuestra recepción y alguien le escribirá pronto.",
    ),
    (
        r"I'm sorry, I can only help with your own appointments and questions\. How can I help you today\?",
        "Lo siento, solo puedo ayudarle con sus propias citas y preguntas. En qué le puedo ayudar hoy?",
    ),
    (
        r"If this is an emergency or you have trouble breathing, call 911 now\. For anything else after your "
        r"treatment, please call us right away(?P<phone>(?: at \S+)?)\. I've alerted our team and someone will "
        r"reach out to you\.",
        "Si es una emergencia o le cuesta respirar, llame al 911 ahora. Para cualquier otra cosa después de su "
        "tratamiento, llámenos de inmediato{phone}. Ya avisé a nuestro equipo y alguien se comunicará con usted.",
    ),
    (
        r"Thanks for the photo! I've shared it with our team and someone will text you back\. If it's about a "
        r"reaction after a treatment and it's urgent, please call us(?P<phone>(?: at \S+)?)\.",
        "Gracias por la foto. La compartí con nuestro equipo y alguien le escribirá. Si es por una reacción después "
        "de un tratamiento y es urgente, llámenos{phone}.",
    ),
]
_COMPILED = [(re.compile(english + r"\Z", re.DOTALL), gsm7(spanish)) for english, spanish in TEMPLATES]
# A knowledge answer: the clinic's document as it is, then the sentence the rules engine adds after it.
STEERS = [
    (re.compile(r" Would you like me to find you a time\?\Z"), " Quiere que le busque un horario?"),
    (
        re.compile(r" Reply (?P<pick>[\d, or]+) for one of the (?P<service>[\w ]+ )?times above\.\Z"),
        " Responda {pick} para elegir uno de los horarios {service}de arriba.",
    ),
]
# A price as the catalog says it: no sentence end inside (a dot only in "$4.50"), so a document's sentences after the
# price line are never read as part of the price.
_PRICE = r"\$(?:[^\n.]|\.(?=\d))*?|free|priced at a consultation"
_PRICE_LINE = re.compile(rf"(?P<name>[^.\n]+?) is (?P<price>{_PRICE})\.(?= |\Z)")


def _groups(match: re.Match, tz, now) -> dict:
    values = {k: v or "" for k, v in match.groupdict().items()}
    for name in ("when", "new"):
        if match.groupdict().get(name):
            values[name] = WHEN.sub(lambda m: _when(m, tz, now), match[name])
    if values.get("pick"):
        values["pick"] = _pick(values["pick"])
    if "amount" in values:
        values["picknew"] = gsm7(f" Responda {values['pick']} para elegir la nueva hora.") if values.get("pick") else ""
    if values.get("until"):  # the hold's end, with the zone label like every other time said in Spanish
        zone = "" if re.search(rf"[AP]M {ZONE}$", values["until"]) else f" {zone_label(now, tz)}"
        values["until"] = f" hasta las {values['until']}{zone}"
    if values.get("refund"):
        values["refund"] = gsm7(f"; se le reembolsará su depósito de {values['refund']}")
    if values.get("refunded"):
        values["refunded"] = gsm7(f" Se le reembolsará su depósito de {values['refunded']}.")
    if values.get("carries"):
        values["carries"] = gsm7(" Su depósito se mantiene.")
    if "minutes" in values:
        values["yours"] = gsm7(f" La suya es el {values['when']} con {values['provider']}.") if values["when"] else ""
    if values.get("phone"):
        values["phone"] = values["phone"].replace(" at ", " al ")
    if values.get("tail"):
        values["tail"] = "." if values["tail"] == "." else gsm7(", o dígame un día que le convenga.")
    if values.get("lines"):
        values["lines"] = WHEN.sub(lambda m: _when(m, tz, now), values["lines"]).replace(" with ", " con ")
    if "lead" in values:
        values["lead"] = _prices_es(values["lead"]) if values["lead"] else ""
    return values


def _prices_es(text: str) -> str:
    """ "Botox is $12 per unit. Lip Filler is $650." in Spanish: "Botox cuesta $12 por unidad. ..." """
    return _PRICE_LINE.sub(lambda m: f"{m['name']} cuesta {price_es(m['price'])}.", text)


def reply_es(reply: str, *, tz, now: datetime) -> str:
    """The rules engine's reply in Spanish. A reply it has no Spanish for is returned as it is (English), so that
    nothing is ever lost; the clinic's own documents are quoted as they are."""
    if not reply:
        return reply
    if "\n\n" in reply:  # paragraphs (a pick's reply, then the answer to a question beside it): each on its own
        return "\n\n".join(reply_es(part, tz=tz, now=now) for part in reply.split("\n\n"))
    who = re.fullmatch(
        r"(?:Our providers are (?P<all>.+?)|(?P<names>.+?) (?P<verb>does|do) (?P<service>[^.]+?) here)\.(?P<rest>.*)",
        reply,
        re.DOTALL,
    )
    if who:  # "who does the injections?": the providers by name and title
        if who["all"]:
            said = f"Nuestros profesionales son {who['all'].replace(' and ', ' y ')}."
        else:
            verb = "hace" if who["verb"] == "does" else "hacen"
            said = f"{who['names'].replace(' and ', ' y ')} {verb} {who['service']} aquí."
        steer = _steer_es(who["rest"])
        return gsm7(said + (steer[1] if steer else who["rest"]))
    if reply.startswith("Yes, we do! "):  # "do you do X?": then X's price
        return "Sí, lo ofrecemos. " + reply_es(reply.removeprefix("Yes, we do! "), tz=tz, now=now)
    templated = _template_es(reply, tz, now)
    if templated is not None:
        return templated
    prices = re.fullmatch(
        rf"((?:[^.\n]+? is (?:{_PRICE})\. ?)+)(?P<steer> Would you .+)?"
        r"(?: Reply (?P<pick>[\d, or]+) for one of the (?P<service>[\w ]+ )?times above\.)?",
        reply,
    )
    if prices and prices.group(1).strip():
        steer = " Quiere que le busque un horario?" if prices["steer"] else ""
        if prices["pick"]:
            of = f"de {prices['service'].strip()} " if prices["service"] else ""
            steer = f" Responda {_pick(prices['pick'])} para elegir uno de los horarios {of}de arriba."
        return _prices_es(prices.group(1).strip()) + steer
    lead = re.match(rf"(?:[^.\n]+? is (?:{_PRICE})\. )+", reply)  # prices said first, then a document's words
    said, reply = (_prices_es(lead[0].strip()) + " ", reply[lead.end() :]) if lead else ("", reply)
    templated = _template_es(reply, tz, now) if said else None
    if templated is not None:  # the prices, then a reply of the engine's own ("I don't see any ... openings ...")
        return said + templated
    steer = _steer_es(reply)
    if steer:
        return said + _quoted(reply[: steer[0]]) + steer[1]
    return said + _quoted(reply)


def _template_es(reply: str, tz, now) -> str | None:
    """The reply in Spanish when one of ``TEMPLATES`` says it whole; None otherwise."""
    for pattern, spanish in _COMPILED:
        match = pattern.match(reply)
        if match:
            return spanish.format(**_groups(match, tz, now))
    return None


def _steer_es(reply: str) -> tuple[int, str] | None:
    """The sentence the rules engine adds after an answer ("Would you like me to find you a time?"), in Spanish,
    with where it starts in ``reply``; None when it has none."""
    for pattern, spanish in STEERS:
        match = pattern.search(reply)
        if match:
            values = {k: _pick(v) for k, v in match.groupdict().items() if k == "pick"}
            service = match.groupdict().get("service")
            values["service"] = f"de {service.strip()} " if service else ""
            return match.start(), spanish.format(**values)
    return None


def _quoted(document: str) -> str:
    """The clinic's own words (a knowledge answer, which has no Spanish version), quoted as they are and said to be
    in English, so that the patient knows why."""
    return gsm7(f'Esto es lo que dice la información de la clínica (en inglés): "{document.strip()}"')
