package chattemplate

import (
	"fmt"
	"strings"
	"time"
)

// strftime formats t as Python's time.strftime does in the C locale (English names), for the directives chat
// templates use: %Y %y %m %d %e %H %I %M %S %p %a %A %b %B %h %j %Z %z %%, and glibc's "-" flag that drops padding
// (%-d). An unknown directive is left as written, as glibc does.
func strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		noPad := false
		if format[j] == '-' && j+1 < len(format) {
			noPad = true
			j++
		}
		num := func(n, width int) string {
			if noPad {
				return fmt.Sprint(n)
			}
			return fmt.Sprintf("%0*d", width, n)
		}
		switch format[j] {
		case 'Y':
			b.WriteString(fmt.Sprint(t.Year()))
		case 'y':
			b.WriteString(num(t.Year()%100, 2))
		case 'm':
			b.WriteString(num(int(t.Month()), 2))
		case 'd':
			b.WriteString(num(t.Day(), 2))
		case 'e':
			if noPad {
				b.WriteString(fmt.Sprint(t.Day()))
			} else {
				fmt.Fprintf(&b, "%2d", t.Day())
			}
		case 'H':
			b.WriteString(num(t.Hour(), 2))
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			b.WriteString(num(h, 2))
		case 'M':
			b.WriteString(num(t.Minute(), 2))
		case 'S':
			b.WriteString(num(t.Second(), 2))
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'b', 'h':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'j':
			b.WriteString(num(t.YearDay(), 3))
		case 'Z':
			name, _ := t.Zone()
			b.WriteString(name)
		case 'z':
			b.WriteString(t.Format("-0700"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteString(format[i : j+1])
		}
		i = j
	}
	return b.String()
}
