"""The currencies debts can be owed and paid in: ISO 4217 codes with their minor units.

Amounts travel as integers in the minor unit (specs/schemas/money.json), so a currency is usable
only if it has one. ISO 4217 also lists codes that are not money a person can be asked to pay,
and those are refused:
- X-codes without a minor unit: precious metals (XAU, XAG, XPD, XPT), units of account and
  bond-market units (XDR, XBA, XBB, XBC, XBD, XSU, XUA, XAD), the testing code XTS and XXX
  ("no currency");
- fund codes, which exist for accounting next to a real currency: BOV, CHE, CHW, CLF, COU, MXV,
  USN, UYI, UYW.
The CFA and CFP francs (XAF, XOF, XPF) and the East Caribbean dollar and Caribbean guilder
(XCD, XCG) are circulating money with minor units and are accepted.

Source: ISO 4217 list one (amendment 179, 2025). A code ISO adds is refused until it is added
here.
"""

from __future__ import annotations

from types import MappingProxyType

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP "
    "GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD "
    "LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB "
    "PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC "
    "SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VED VES WST XCD XCG YER ZAR ZMW "
    "ZWG"
)

MINOR_UNITS: MappingProxyType[str, int] = MappingProxyType(
    {
        **dict.fromkeys(_TWO.split(), 2),
        **dict.fromkeys(_ZERO.split(), 0),
        **dict.fromkeys(_THREE.split(), 3),
    }
)
"""Accepted code → digits of its minor unit (JPY 0: 450 is ¥450; BHD 3: 450 is 0.450 BD)."""

# ISO 4217 codes that are deliberately not accepted (see the module docstring).
REFUSED = frozenset(
    "XAU XAG XPD XPT XDR XTS XXX XBA XBB XBC XBD XSU XUA XAD "
    "BOV CHE CHW CLF COU MXV USN UYI UYW".split()
)


def is_accepted_currency(code: str) -> bool:
    return code in MINOR_UNITS


def minor_unit(code: str) -> int:
    """Digits after the decimal point; KeyError for a code that is not accepted."""
    return MINOR_UNITS[code]
