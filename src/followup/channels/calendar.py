"""An appointment as an iCalendar invitation (RFC 5545 object, RFC 5546 method REQUEST), the form
every mail and calendar client offers to add to a calendar."""

from __future__ import annotations

import datetime as dt

from icalendar import Calendar, Event, vCalAddress, vText

from followup.channels.schemas import CalendarEvent

PRODUCT_ID = "-//followup//interviews//EN"


def invitation(event: CalendarEvent, *, organizer: str, attendee: str, domain: str) -> bytes:
    """The VCALENDAR of one VEVENT, times in UTC.

    The UID is the event's own with the sender's domain, so two deployments never share one.
    RSVP is off: the customer booked the time themselves, and the organizer's address may not
    read replies.
    """
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    vevent = Event()
    vevent.add("uid", f"{event.uid}@{domain}")
    vevent.add("dtstamp", event.stamp.astimezone(dt.UTC))
    vevent.add("dtstart", event.starts_at.astimezone(dt.UTC))
    vevent.add("dtend", event.ends_at.astimezone(dt.UTC))
    vevent.add("sequence", 0)
    vevent.add("status", "CONFIRMED")
    vevent.add("summary", event.summary)
    vevent.add("location", event.location)
    if event.description:
        vevent.add("description", event.description)
    if event.url:
        vevent.add("url", event.url)
    host = vCalAddress(f"mailto:{organizer}")
    vevent.add("organizer", host)
    guest = vCalAddress(f"mailto:{attendee}")
    guest.params["role"] = vText("REQ-PARTICIPANT")
    guest.params["partstat"] = vText("ACCEPTED")
    guest.params["rsvp"] = vText("FALSE")
    vevent.add("attendee", guest)
    calendar.add_component(vevent)
    return bytes(calendar.to_ical())
