package data

import "fmt"

// Count writes n with the singular or the plural phrase that follows it: Count(1, "row was", "rows were") is
// "1 row was", Count(3, ...) "3 rows were". Warnings and errors count with it so that one row never reads "1 rows".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// wasWere is the verb that agrees with n.
func wasWere(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}
